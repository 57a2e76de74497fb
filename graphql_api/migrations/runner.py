"""Bringing a database to the newest schema with Alembic."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from graphql_api.groups.derived import rebuild
from graphql_api.groups.rules import Rules
from graphql_api.migrations.compatibility import History, applied_revisions

logger = logging.getLogger("graphql_api.migrations")

MIGRATIONS = Path(__file__).parent
CORE_VERSION_TABLE = "alembic_version"


def alembic_config(folder: str | None = None, version_table: str = CORE_VERSION_TABLE) -> Config:
    """Alembic's configuration for the core's revisions, or for one plugin's ``folder``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", folder or str(MIGRATIONS / "versions"))
    config.attributes["version_table"] = version_table
    return config


def histories(plugin_migrations: Mapping[str, str]) -> list[Config]:
    """The core's history first, then each plugin's, each with a version table of its own,
    so a plugin can be removed (or added later) without breaking the others'."""
    return [
        alembic_config(),
        *(
            alembic_config(folder, f"{CORE_VERSION_TABLE}_{name}")
            for name, folder in sorted(plugin_migrations.items())
        ),
    ]


DERIVED_MEMBERSHIPS = "0006"
"""The revision that adds the stored derived memberships, which an upgrade then fills."""


async def upgrade(
    engine: AsyncEngine, plugin_migrations: Mapping[str, str] = {}, rules: Rules | None = None
) -> None:
    """Apply every migration of the core and then of each plugin, in one transaction; a
    database that had groups before derived memberships were stored gets them filled
    (with ``rules``, the application's filter fields). A history a newer release has
    migrated further is left as it is."""

    def run(connection: Connection) -> str | None:
        before = MigrationContext.configure(connection).get_current_revision()
        for config in histories(plugin_migrations):
            table = config.attributes["version_table"]
            known = History.of(ScriptDirectory.from_config(config)).known
            if not applied_revisions(connection, table) <= known:
                # A newer release migrated it (the preflight let it by only as compatible):
                # nothing of this release's is missing, and Alembic cannot start from there.
                logger.warning("%s is ahead of this release: left as it is", table)
                continue
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return before

    async with _migrating(engine) as connection:
        before = await connection.run_sync(run)
        if before is not None and before < DERIVED_MEMBERSHIPS:
            info = {"rules": rules} if rules is not None else {}
            session = AsyncSession(bind=connection, info=info)
            await rebuild(session, cause="stored at the upgrade", record=False)
            await session.flush()
            if connection.dialect.name == "postgresql":
                # Fresh statistics, or the planner guesses badly about the filled table.
                await connection.execute(text("ANALYZE derived_memberships"))


async def downgrade(engine: AsyncEngine, plugin_migrations: Mapping[str, str] = {}) -> None:
    """Undo every migration: the plugins' first, then the core's."""

    def run(connection: Connection) -> None:
        for config in reversed(histories(plugin_migrations)):
            config.attributes["connection"] = connection
            command.downgrade(config, "base")

    async with _migrating(engine) as connection:
        await connection.run_sync(run)


@asynccontextmanager
async def _migrating(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction for the migrations. On SQLite, foreign keys are off meanwhile: a
    migration that rebuilds a table (Alembic's batch mode) drops the old one, which would
    delete, or refuse for, every row referring to it. Every reference is checked before
    the transaction commits, so a migration cannot leave one dangling."""
    async with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # only outside a transaction does SQLite change this
            await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await connection.commit()
        try:
            async with connection.begin():
                yield connection
                if sqlite:
                    dangling = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                    if dangling:
                        raise RuntimeError(f"the migration leaves references dangling: {dangling}")
        finally:
            if sqlite:
                await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                await connection.commit()


def newest_revisions(plugin_migrations: Mapping[str, str] = {}) -> dict[str, History]:
    """What this code knows of the core's history and of each plugin's, by version table:
    the heads a database at the newest schema has applied, and every revision. Read from
    the files, once."""
    return {
        config.attributes["version_table"]: History.of(ScriptDirectory.from_config(config))
        for config in histories(plugin_migrations)
    }
