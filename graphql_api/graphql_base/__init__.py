"""The GraphQL layer every feature's ``api/`` shares: context, Relay, the mutation base,
errors, access, cost, node lookup and compiled reads. It imports no feature's ``api/``; the
staff schema is composed in ``web/staff_schema.py``."""
