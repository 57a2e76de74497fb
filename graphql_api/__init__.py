"""GraphQL API for CRM contact groups."""

__version__ = "0.1.0"
