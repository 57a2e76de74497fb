"""Alembic: the core's revisions (``versions/``), the runner and the metadata of every model."""
