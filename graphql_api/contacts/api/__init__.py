"""The GraphQL layer of contacts: types, inputs, queries, mutations and loaders."""
