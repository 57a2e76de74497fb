"""Writers on SQLite: one at a time, each holding the database's write lock from its start.

PostgreSQL orders its writers with locks (the group graph's advisory lock, row locks), and
each transaction reads what it then writes over. SQLite has one write lock for the whole
file, but the driver (sqlite3's legacy transaction control, which aiosqlite keeps) sends
``BEGIN`` only just before a transaction's first INSERT, UPDATE or DELETE: everything it
read before was read outside any transaction, and another writer may have changed it by
the time this one gets the lock. A cycle check, a composite's "no explicit members" check
and a derived refresh would then write over what they did not see.

So a transaction that writes is declared so before its first statement
(``begin_writing``; ``run_mutation`` does it): it begins with ``BEGIN IMMEDIATE``, which
takes the write lock at once, waiting up to ``SQLITE_BUSY_TIMEOUT_MS`` for the writer that
holds it, of this process or any other (``serve --workers``, ``graphql-api worker``, the
command line): the lock is the file's. Reads are never declared and take no lock: they
are left to the driver, as before, and never wait for a writer.

Within one process the declared writers also queue for their turn (``writer_turn``),
first come first served, so that they do not all poll SQLite's lock: SQLite's busy
handler retries every 100 ms at most, and with many writers waiting, one could lose every
retry until its busy timeout ran out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite writer waits for the write lock (and for its turn in the process)
before it gives up; ``run_mutation`` then answers ``CONFLICT``."""

WRITES = "graphql_api_writes"
"""Execution option of a connection whose transaction writes (``begin_writing``)."""

SQLITE_BUSY = 5
"""SQLite's primary result code for "database is locked"; extended codes keep it in their
low byte."""


class WriterTimeout(Exception):
    """A writer waited the whole busy timeout for its turn or for SQLite's write lock:
    another writer kept it. Nothing of its transaction was written."""


def on_sqlite_begin(connection: Connection) -> None:
    """``begin`` listener of a SQLite engine: a transaction declared writing begins with
    the write lock (``BEGIN IMMEDIATE``); any other is left to the driver."""
    if connection.get_execution_options().get(WRITES):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


async def begin_writing(session: AsyncSession) -> None:
    """Declare ``session``'s transaction, begun and with no statement run yet, one that
    writes: on SQLite it takes the database's write lock now and holds it until it ends,
    so its checks and derived refreshes read what they then write over; on PostgreSQL it
    does nothing (its writers lock what they need: ``groups.graph.lock_graph``, rows).

    Call it first in a transaction that writes (``run_mutation`` does), inside its
    ``writer_turn``. A transaction that writes without it still works, but what it reads
    before its first write may have changed by the time it writes."""
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        await session.connection(execution_options={WRITES: True})


Turns = WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
"""An engine's queue of writers, one per event loop (an asyncio lock serves one loop; an
application is normally served by one)."""
_TURNS: WeakKeyDictionary[Engine, Turns] = WeakKeyDictionary()


@asynccontextmanager
async def writer_turn(engine: AsyncEngine) -> AsyncIterator[None]:
    """On SQLite, this process's declared writers one at a time, in the order they came,
    each for as long as the block runs (its whole transaction); ``WriterTimeout`` after
    ``SQLITE_BUSY_TIMEOUT_MS`` in the queue. On PostgreSQL nothing: its writers run side
    by side."""
    if engine.dialect.name != "sqlite":
        yield
        return
    by_loop = _TURNS.setdefault(engine.sync_engine, Turns())
    turn = by_loop.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    try:
        async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
            await turn.acquire()
    except TimeoutError as error:
        raise WriterTimeout from error
    try:
        yield
    finally:
        turn.release()


@asynccontextmanager
async def writing_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A transaction of ``sessions`` declared a writing one, in this process's turn
    (``writer_turn`` and ``begin_writing``), committed when the block ends: for the
    service's own writes outside a mutation (workers, schedules, plugins' routes). On
    SQLite a transaction that reads and then writes without it can fail at once when
    another writer committed in between (its snapshot is stale: no busy wait helps)."""
    async with writer_turn(sessions.kw["bind"]), sessions() as session, session.begin():
        await begin_writing(session)
        yield session


def is_busy(error: BaseException) -> bool:
    """Whether SQLite gave up waiting for its write lock: another connection held it for
    the whole busy timeout."""
    if not isinstance(error, DBAPIError):
        return False
    code: Any = getattr(error.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == SQLITE_BUSY
    return "database is locked" in str(error.orig)


async def hold_write_lock(session: AsyncSession) -> None:
    """On SQLite, make sure the transaction holds the database's write lock from now on, so
    that what it reads stays as read until it commits (``kernel.writing``): a transaction
    declared writing, or one that has written, holds it already; any other is begun now
    with ``BEGIN IMMEDIATE``. Nothing on PostgreSQL, whose writers lock what they need."""
    if session.bind.dialect.name != "sqlite":
        return
    connection = await session.connection()
    # The driver (legacy transaction control) begins a transaction at the first write, or
    # at the start of one declared writing; until then its reads ran outside any.
    driver = connection.sync_connection.connection.driver_connection
    if not driver.in_transaction:
        await connection.exec_driver_sql("BEGIN IMMEDIATE")
