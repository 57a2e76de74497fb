"""Stopping the statements of a request that is stopped midway (its time budget ran out, or
its client left): the connections it holds are known, so they can be interrupted before its
task is cancelled.

SQLite runs each statement in a thread of its own, which a cancelled task would leave
running to the end, holding its connection; ``interrupt()`` stops it at once. PostgreSQL's
driver cancels the statement on the server when the awaiting task is cancelled, and
``statement_timeout`` bounds every statement on its own (``kernel.db.create_engine``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

Held = set[Any]
"""The pool entries of the connections a request has checked out and not returned."""

_HELD: ContextVar[Held | None] = ContextVar("graphql_api_held_connections", default=None)


def track_connections(engine: AsyncEngine) -> None:
    """Note each connection ``engine`` lends in the ``Held`` of the request borrowing it."""
    event.listen(engine.sync_engine, "checkout", _checked_out)
    event.listen(engine.sync_engine, "checkin", _checked_in)


def _checked_out(_dbapi_connection: Any, entry: Any, _proxy: Any) -> None:
    held = _HELD.get()
    if held is not None:
        held.add(entry)


def _checked_in(_dbapi_connection: Any, entry: Any) -> None:
    held = _HELD.get()
    if held is not None:
        held.discard(entry)


@contextmanager
def holding() -> Iterator[Held]:
    """The connections checked out in the block, and in the tasks started in it."""
    held: Held = set()
    token = _HELD.set(held)
    try:
        yield held
    finally:
        _HELD.reset(token)


async def interrupt(held: Held) -> None:
    """Stop the statements running on ``held`` connections (SQLite's; see above)."""
    for entry in list(held):
        connection = entry.driver_connection
        if isinstance(connection, aiosqlite.Connection):
            await connection.interrupt()
