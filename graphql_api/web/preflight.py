"""Before a command uses the database: the settings read, the manifest of trusted
documents (for ``serve``) is usable, the plugins load, the database answers and its
schema is one the command's code can serve (and, for a command that needs its tables, not
an older one); ``serve`` can listen where it is told. Each failure is one line saying what
to do, never a traceback."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from pydantic import ValidationError
from sqlalchemy.engine import make_url

from graphql_api.kernel.db import create_engine, one_line, service_engine
from graphql_api.migrations.compatibility import (
    History,
    SchemaState,
    UnknownCompatibility,
    schema_state,
)
from graphql_api.migrations.runner import newest_revisions
from graphql_api.plugin_host.discovery import PLUGIN_IMPORTS, imports_graphql_api
from graphql_api.plugin_host.manager import PluginFailed, Plugins
from graphql_api.settings import ENV_PREFIX, Settings
from graphql_api.web.app import load_plugins
from graphql_api.web.trusted_documents import ManifestError, load_trusted_documents

logger = logging.getLogger("graphql_api.preflight")


class Refused(Exception):
    """What stops a command, in one line an operator can act on; ``hint``, when given, is
    a second line on what usually causes it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


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


def check_plugins(settings: Settings, *, every: bool = False) -> Plugins:
    """The plugins, loaded; refused when they conflict, when one fails in strict mode or,
    with ``every`` (for ``migrate``, which cannot know a missing plugin's migrations), when
    any plugin fails to import or register."""
    try:
        return load_plugins(
            settings.model_copy(update={"strict_plugins": True}) if every else settings
        )
    except PluginFailed as error:
        if every:
            todo = (
                "nothing was migrated, as its migrations are unknown: fix or uninstall it, or "
                f"name the plugins to load in {ENV_PREFIX}PLUGINS"
            )
        else:
            todo = (
                f"fix it, leave it out of {ENV_PREFIX}PLUGINS or unset {ENV_PREFIX}STRICT_PLUGINS"
            )
        hint = PLUGIN_IMPORTS if imports_graphql_api(error.__cause__) else None
        raise Refused(f"{error}; {todo}", hint) from None
    except Exception as error:  # two plugins claiming one name: they cannot be served together
        raise Refused(
            f"the plugins do not load together: {one_line(error)}; fix or uninstall one, or "
            f"name the plugins to load in {ENV_PREFIX}PLUGINS"
        ) from None


def check_database(settings: Settings, plugins: Plugins, *, migrated: bool) -> None:
    """Refuse unless the database answers and its schema is one this code can serve (the
    core's migrations and every one of ``plugins``): the newest, or one a newer release
    expanded, with a warning. Refused as well when ``migrated``, for every command but
    ``migrate``, and the code has migrations the database lacks."""
    try:
        newest = newest_revisions(plugins.migrations())
    except UnknownCompatibility as error:
        raise Refused(f"{error}; fix the migration (docs/upgrades.md)") from None
    # migrate connects to the database itself, past any pooler: it checks that one.
    state = asyncio.run(_state(settings, newest, direct=not migrated))
    if migrated and state.behind:
        raise Refused(
            f"the database {_shown(settings)} is not at the newest schema "
            f"({', '.join(state.behind)} behind); run `graphql-api migrate` first"
        )
    if state.incompatible:
        raise Refused(
            f"the database {_shown(settings)} has a newer schema this release cannot serve "
            f"({', '.join(state.incompatible)} ahead, incompatible: a migration has run that "
            "this release's code cannot serve); run the release that migrated it, or restore "
            "the backup taken before the upgrade (docs/upgrades.md)"
        )
    if state.ahead:
        logger.warning(
            "the database %s has a newer schema than this release (%s ahead, compatible): "
            "served as it is until this release is replaced (docs/upgrades.md)",
            _shown(settings),
            ", ".join(state.ahead),
        )


async def _state(settings: Settings, newest: dict[str, History], *, direct: bool) -> SchemaState:
    engine = None
    try:
        # Making the engine may fail too: a SQLite file whose folder cannot be made.
        engine = create_engine(settings.direct_url) if direct else service_engine(settings)
        return await schema_state(engine, newest)
    except Exception as error:  # whatever keeps the database from answering
        raise Refused(
            f"cannot reach the database {_shown(settings)}: {one_line(error)}; check that it "
            f"runs and that {ENV_PREFIX}DATABASE_URL names it"
        ) from None
    finally:
        if engine is not None:
            await engine.dispose()


def check_listening(host: str, port: int) -> None:
    """Refuse to serve on a port out of range, or where nothing can listen: a port in use,
    an address this machine does not have or a name that does not resolve. Tried as
    uvicorn binds, on a socket closed again at once."""
    if not 1 <= port <= 65535:
        raise Refused(
            f"{port} is no port; give --port or {ENV_PREFIX}PORT a number from 1 to 65535"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            todo = f"stop what listens there, or choose another --port or {ENV_PREFIX}PORT"
        elif isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
            todo = f"give --host or {ENV_PREFIX}HOST an address of this machine"
        else:
            todo = f"choose another --port or {ENV_PREFIX}PORT"
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        raise Refused(f"cannot listen on {where}: {error.strerror or error}; {todo}") from None


def _shown(settings: Settings) -> str:
    return make_url(settings.database_url).render_as_string(hide_password=True)
