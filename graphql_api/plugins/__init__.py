"""The plugin system: hook specifications (``hookimpl`` for plugin authors), the
per-application manager, and what plugins contribute to the schema."""

from graphql_api.plugins.hookspecs import hookimpl

__all__ = ["hookimpl"]
