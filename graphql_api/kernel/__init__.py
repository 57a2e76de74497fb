"""What every feature builds on: database, errors, validation, paging, SQL text.

Nothing here imports a feature, the GraphQL layer or the plugin system.
"""
