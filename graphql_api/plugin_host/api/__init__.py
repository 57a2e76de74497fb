"""The GraphQL layer of plugins: types, inputs, queries, mutations and loaders."""
