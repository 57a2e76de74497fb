"""Strict mode's guard of the core's rows: plugins read them, only the core writes them.

With ``GRAPHQL_API_STRICT_PLUGINS=true``, a plugin hook that writes a row of a core table
(any table of the core's declarative base: ``groups``, ``memberships``,
``derived_memberships``, ``contacts``, ...) is refused with ``CoreWriteRefused``, which
names the plugin, the hook and the table. The change it took part in is rolled back with
it, so nothing of it is committed. A plugin's own tables (its own ``MetaData``) are its to
write. Without strict mode such writes go through, as they always did; the reference
calls them unsupported, since they bypass what keeps derived membership exact.

How it works, in three parts:

- **Who is running.** The host runs every hook it calls at run time (``validate_change``,
  ``apply_change``, ``deliver``, ``startup``) inside ``hook_running``, which sets a
  context variable to the plugin and the hook, in strict mode only. The core's own
  plugins (``core.roles``) run as the core: the variable is cleared for them.
- **What is written.** Two SQLAlchemy events on every ``Session``, listened to once the
  process builds a strict application (``watch_sessions``): ``do_orm_execute`` refuses an
  INSERT, UPDATE or DELETE statement whose target is a core table (also written as
  ``text()``, recognised by its ``INSERT INTO`` / ``UPDATE`` / ``DELETE FROM``), and
  ``before_flush`` refuses pending ORM changes to core rows (added, changed or deleted
  objects of a core model), while the variable names a plugin.
- **Whose pending changes.** The session's flush is deferred (``autoflush`` is off), so an
  object a plugin adds may be flushed later by the core. Around a hook with a session, the
  host therefore flushes first, as the core (what is pending then is the core's), and
  afterwards refuses what the plugin left pending on a core table.

The documented way for a plugin to change core data is a service the plugin API exports
(``contacts_changed``, ...). Such a service is wrapped in ``core_service``: inside it the
variable is cleared, so what the service writes on the plugin's behalf is written as the
core; on entry it refuses what the plugin left pending on a core table (which the
service's own flush would otherwise write as the core's).

Limits: the guard watches the ORM session the plugin is given or opens (statements sent
over a raw connection, ``session.connection()``, are not seen), and a hook's own GraphQL
resolvers run as requests, not hooks. It catches mistakes, not malice.
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.sql.elements import TextClause

from graphql_api.kernel.db import Base

P = ParamSpec("P")
R = TypeVar("R")


class CoreWriteRefused(RuntimeError):
    """A plugin's hook wrote a row of a core table in strict mode."""


@dataclass(frozen=True)
class Running:
    """The plugin hook whose writes are watched."""

    plugin: str
    hook: str


_RUNNING: contextvars.ContextVar[Running | None] = contextvars.ContextVar(
    "graphql_api_plugin_hook_running", default=None
)

_WRITES_IN_TEXT = re.compile(
    r"\b(?:insert\s+(?:or\s+\w+\s+)?into|update|delete\s+from)\s+"
    r"(?:[\"`]?\w+[\"`]?\.)?[\"`]?(\w+)",
    re.IGNORECASE,
)
"""The target table of a write written as SQL text (a schema before it is skipped)."""


def running() -> Running | None:
    """The plugin hook running now, when strict mode watches it; None for the core."""
    return _RUNNING.get()


def core_tables() -> frozenset[str]:
    """The names of the core's tables: every table of its declarative base (the plugins
    keep theirs in a ``MetaData`` of their own)."""
    return frozenset(Base.metadata.tables)


@asynccontextmanager
async def hook_running(
    plugin: str | None, hook: str, session: AsyncSession | None = None
) -> AsyncIterator[None]:
    """Run a hook's call inside as ``plugin``'s (None: as the core's, not watched).

    With a ``session``, what is pending in it is flushed first, as the caller's, and what
    the plugin leaves pending on a core table is refused when the hook returns."""
    if plugin is not None and session is not None:
        await session.flush()
    token = _RUNNING.set(Running(plugin, hook) if plugin is not None else None)
    try:
        yield
        if plugin is not None and session is not None:
            _refuse_pending(session.sync_session, Running(plugin, hook))
    finally:
        _RUNNING.reset(token)


def core_service(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Mark an async function of the plugin API that writes core rows on a plugin's
    behalf: inside it, writes are the core's. Called from a watched hook, it first refuses
    what the plugin left pending on a core table in the sessions it is given."""

    @functools.wraps(function)
    async def service(*args: P.args, **kwargs: P.kwargs) -> R:
        caller = _RUNNING.get()
        if caller is not None:
            for session in _sessions_among([*args, *kwargs.values()]):
                _refuse_pending(session, caller)
        token = _RUNNING.set(None)
        try:
            return await function(*args, **kwargs)
        finally:
            _RUNNING.reset(token)

    return service


def watch_sessions() -> None:
    """Listen to every ``Session``'s writes (once per process; a no-op after). Outside a
    watched hook the listeners return at once."""
    for name, listener in (("do_orm_execute", _on_execute), ("before_flush", _on_flush)):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


def _on_execute(state: ORMExecuteState) -> None:
    caller = _RUNNING.get()
    if caller is None:
        return
    statement = state.statement
    if state.is_insert or state.is_update or state.is_delete:
        target = getattr(getattr(statement, "table", None), "name", None)
        names = [target] if isinstance(target, str) else []
    elif isinstance(statement, TextClause):
        names = _WRITES_IN_TEXT.findall(statement.text)
    else:
        return
    _refuse(caller, names)


def _on_flush(session: Session, _context: UOWTransaction, _instances: Any) -> None:
    caller = _RUNNING.get()
    if caller is not None:
        _refuse_pending(session, caller)


def _refuse_pending(session: Session, caller: Running) -> None:
    changed = [
        *session.new,
        *session.deleted,
        *(obj for obj in session.dirty if session.is_modified(obj)),
    ]
    _refuse(caller, (table.name for obj in changed for table in inspect(obj).mapper.tables))


def _refuse(caller: Running, tables: Iterable[str]) -> None:
    core = core_tables()
    written = sorted({name.lower() for name in tables} & core)
    if written:
        raise CoreWriteRefused(
            f"plugin {caller.plugin!r} wrote the core table {written[0]!r} in its "
            f"{caller.hook} hook: core rows are read-only to plugins in strict mode "
            "(GRAPHQL_API_STRICT_PLUGINS); change core data through the services "
            "graphql_api.plugin exports"
        )


def _sessions_among(values: Iterable[Any]) -> list[Session]:
    found = []
    for value in values:
        if isinstance(value, AsyncSession):
            found.append(value.sync_session)
        elif isinstance(value, Session):
            found.append(value)
    return found
