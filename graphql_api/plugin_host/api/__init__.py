"""The GraphQL layer of the plugin host: the ``plugins`` query and its type."""
