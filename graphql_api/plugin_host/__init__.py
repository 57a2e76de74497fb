"""The plugin host: the hook specifications, finding and checking plugins, what they add
to the schema, and delivering events to them. Plugin authors import ``graphql_api.plugin``
instead, the one public path."""
