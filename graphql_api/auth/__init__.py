"""Who is asking: the authentication middleware in front of the GraphQL endpoint."""
