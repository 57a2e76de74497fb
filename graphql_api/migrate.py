"""Bringing a database to the newest schema with Alembic."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str = "", plugin_folders: Sequence[str] = ()) -> Config:
    """The core's revisions and each plugin's own branch, in one history."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    folders = [str(MIGRATIONS / "versions"), *plugin_folders]
    config.set_main_option("version_locations", os.pathsep.join(folders))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(
    engine: AsyncEngine, plugin_folders: Sequence[str] = (), revision: str = "heads"
) -> None:
    """Apply every migration of the core and the plugins, in one transaction."""

    def run(connection: Connection) -> None:
        config = alembic_config(plugin_folders=plugin_folders)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)
