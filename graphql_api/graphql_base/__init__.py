"""The GraphQL layer every feature shares (context, Relay, mutation base, errors), and
``schema``, the composition root of the staff schema."""
