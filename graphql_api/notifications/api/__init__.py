"""The GraphQL layer of notifications: types, inputs, queries, mutations and loaders."""
