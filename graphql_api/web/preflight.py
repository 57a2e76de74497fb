"""Before a command uses the database: the settings read, the manifest of trusted
documents (for ``serve``) is usable, the database answers and, for a command that needs
its tables, its schema is the newest. Each failure is one line saying what to do, never a
traceback."""

from __future__ import annotations

import asyncio

from pydantic import ValidationError
from sqlalchemy.engine import make_url

from graphql_api.kernel.db import create_engine, one_line
from graphql_api.migrations.runner import behind, newest_revisions
from graphql_api.plugin_host.manager import PluginFailed
from graphql_api.settings import ENV_PREFIX, Settings
from graphql_api.web.app import load_plugins
from graphql_api.web.trusted_documents import ManifestError, load_trusted_documents


class Refused(Exception):
    """What stops a command, in one line an operator can act on."""


def read_settings() -> Settings:
    """The settings, or ``Refused`` naming each environment variable that does not fit."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{ENV_PREFIX}{'_'.join(map(str, problem['loc'])).upper()}: "
            f"{problem['msg'].removeprefix('Value error, ')}"
            for problem in error.errors()
        )
        raise Refused(f"{problems} (see the settings in README.md)") from None


def check_trusted_documents(settings: Settings) -> None:
    """Refuse to serve with a manifest of trusted documents that cannot be read, is no JSON
    object of strings, or holds a document that does not parse or match its hash."""
    try:
        load_trusted_documents(settings)
    except ManifestError as error:
        raise Refused(
            f"{ENV_PREFIX}TRUSTED_DOCUMENTS: {error}; use the manifest your frontend's build "
            "writes, unchanged (docs/http.md)"
        ) from None


def check_database(settings: Settings, *, migrated: bool) -> None:
    """Refuse unless the database answers and, when ``migrated``, its schema is the newest
    (the core's migrations and every plugin's)."""
    try:
        newest = newest_revisions(load_plugins(settings).migrations())
    except PluginFailed as error:
        raise Refused(
            f"{error}; fix it, leave it out of {ENV_PREFIX}PLUGINS or unset "
            f"{ENV_PREFIX}STRICT_PLUGINS"
        ) from None
    lagging = asyncio.run(_lagging(settings, newest))
    if migrated and lagging:
        raise Refused(
            f"the database {_shown(settings)} is not at the newest schema "
            f"({', '.join(lagging)} behind); run `graphql-api migrate` first"
        )


async def _lagging(settings: Settings, newest: dict[str, set[str]]) -> list[str]:
    engine = create_engine(settings.database_url)
    try:
        return await behind(engine, newest)
    except Exception as error:  # whatever keeps the database from answering
        raise Refused(
            f"cannot reach the database {_shown(settings)}: {one_line(error)}; check that it "
            f"runs and that {ENV_PREFIX}DATABASE_URL names it"
        ) from None
    finally:
        await engine.dispose()


def _shown(settings: Settings) -> str:
    return make_url(settings.database_url).render_as_string(hide_password=True)
