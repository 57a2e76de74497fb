"""The GraphQL layer of groups: types, inputs, queries, mutations and loaders."""
