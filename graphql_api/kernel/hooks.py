"""The marker of hook implementations. It lives in the kernel because the core's own
plugins (the role rules) implement hooks from inside the domain, below the plugin host
that calls them; the specifications themselves are in ``plugin_host/hookspecs.py``."""

import pluggy

PROJECT = "graphql_api"
"""The pluggy project name: the marker's name and the entry-point group plugins use."""

hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a function as the implementation of the hook of its name."""
