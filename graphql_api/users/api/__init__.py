"""The GraphQL layer of users: types, inputs, queries, mutations and loaders."""
