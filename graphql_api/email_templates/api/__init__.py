"""The GraphQL layer of email templates: types, inputs, queries, mutations and loaders."""
