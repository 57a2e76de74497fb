"""The GraphQL layer of roles: types, inputs, queries, mutations and loaders."""
