"""Alembic environment: runs on the connection ``graphql_api.migrations.runner`` hands over,
or, for ``alembic revision --autogenerate``, on an engine from ``sqlalchemy.url``."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from graphql_api.kernel.db import create_engine
from graphql_api.migrations.compatibility import COMPATIBILITY_TABLE, record
from graphql_api.migrations.metadata import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    version_table = config.attributes.get("version_table", "alembic_version")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        version_table=version_table,
        include_name=not_compatibility,
    )
    with context.begin_transaction():
        context.run_migrations()
        # In the same transaction: which code can serve the schema changes with it.
        record(connection, context.script, version_table)


def not_compatibility(name: str | None, type_: str, _: object) -> bool:
    """Autogenerate leaves the compatibility table alone: the migrations own it, no model."""
    return not (type_ == "table" and name == COMPATIBILITY_TABLE)


async def run_with_own_engine() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(run_on)
        await connection.commit()
    await engine.dispose()


given = config.attributes.get("connection")
if given is not None:
    run_on(given)
else:
    asyncio.run(run_with_own_engine())
