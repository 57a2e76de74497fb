"""The HTTP side of the service: the Starlette application, its endpoints and guards,
planned reads, trusted documents, monitoring and GraphiQL. It composes the staff schema
(``staff_schema``) from every feature."""
