"""The plugin system: hook specifications, the per-application manager, a testing kit."""

from graphql_api.plugins.hookspecs import hookimpl

__all__ = ["hookimpl"]
