"""Engine, sessions and the declarative base shared by every feature's models."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, Enum, MetaData, event
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from graphql_api.kernel import writing

if TYPE_CHECKING:
    from graphql_api.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base; constraint names are fixed so migrations are stable across databases."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


IDS_NEVER_REUSED = {"sqlite_autoincrement": True}
"""Table options of a table whose ids are public: SQLite's AUTOINCREMENT, so a deleted
row's id is never handed out again (PostgreSQL's sequences never do)."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps.

    SQLite stores no zone, so values would come back naive there and aware on PostgreSQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def string_enum(cls: type[enum.StrEnum]) -> Enum:
    """An enum column kept as a plain string with a CHECK: identical on SQLite and PostgreSQL."""
    return Enum(cls, native_enum=False, length=20, create_constraint=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _prepare_sqlite(url: str) -> None:
    """Create the folder of a SQLite file so a fresh checkout can start without set-up."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(os.path.dirname(path) or ".").mkdir(parents=True, exist_ok=True)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Unicode-aware lower() so case-insensitive matching equals PostgreSQL's;
    # SQLite's built-in lower() folds ASCII only.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # A writer waits this long for the write lock another connection holds
    # (kernel.writing); read at each connect, so a test can shorten it.
    cursor.execute(f"PRAGMA busy_timeout={int(writing.SQLITE_BUSY_TIMEOUT_MS)}")
    cursor.close()


def _in_memory(url: str) -> bool:
    """A SQLite database in memory: one connection that every session shares (so no
    other writer to wait for, and no transaction of a session's own to begin)."""
    return ":memory:" in url or "mode=memory" in url


def _unicode_lower(value: str | None) -> str | None:
    return value.lower() if isinstance(value, str) else value


TRANSACTION_POOLED = "graphql_api_transaction_pooled"
"""Key of a database connection's ``info``: it reaches PostgreSQL through a
transaction-mode pooler, which may lend each transaction another server connection, so
nothing made on the server (a prepared statement, a temporary table's rows) may be
relied on beyond the transaction that made it."""


def create_engine(
    url: str,
    *,
    statement_timeout_seconds: float | None = None,
    transaction_pooled: bool = False,
    **kwargs: Any,
) -> AsyncEngine:
    """Create the async engine, with SQLite tuned for a concurrent web service;
    ``statement_timeout_seconds`` bounds each statement on PostgreSQL (the server cancels
    it), whatever happens to the client that sent it. ``transaction_pooled``: ``url`` is a
    transaction-mode pooler such as PgBouncer (``GRAPHQL_API_DATABASE_DIRECT_URL``)."""
    if url.startswith("sqlite"):
        _prepare_sqlite(url)
        if _in_memory(url):
            # One shared connection (SQLAlchemy's StaticPool): there is no pool to size.
            kwargs.pop("pool_size", None)
            kwargs.pop("max_overflow", None)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        if not _in_memory(url):
            # Declared writers begin with the write lock (kernel.writing).
            event.listen(engine.sync_engine, "begin", writing.on_sqlite_begin)
        return engine
    milliseconds = (
        None
        if statement_timeout_seconds is None
        else max(1, round(statement_timeout_seconds * 1000))
    )
    if transaction_pooled:
        # A named prepared statement lives on the server connection that parsed it, which
        # the pooler lends to other clients between transactions, and asyncpg closes one
        # only at its next statement, on whichever server connection that lands: each is
        # parsed as PostgreSQL's unnamed statement (gone at the next parse) and never
        # cached. A pooler refuses unknown startup parameters, so the timeout is set in
        # each transaction instead.
        kwargs["connect_args"] = {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _unnamed_statement,
        }
    elif milliseconds is not None:
        kwargs["connect_args"] = {"server_settings": {"statement_timeout": str(milliseconds)}}
    # No pre-ping: it costs a round trip on every checkout. A connection found dead is
    # invalidated with the rest of the pool when its statement fails, and the next
    # checkout connects afresh.
    engine = create_async_engine(url, **kwargs)
    if transaction_pooled:
        event.listen(engine.sync_engine, "connect", _mark_transaction_pooled)
        if milliseconds is not None:
            event.listen(engine.sync_engine, "begin", _timeout_each_transaction(milliseconds))
    return engine


def service_engine(
    settings: Settings, *, serving: bool = False, statement_timeout_seconds: float | None = None
) -> AsyncEngine:
    """The engine of ``GRAPHQL_API_DATABASE_URL``, told whether a transaction-mode pooler
    stands in front (``GRAPHQL_API_DATABASE_DIRECT_URL``); ``serving``: a long-running
    process's, keeping ``GRAPHQL_API_DATABASE_POOL_SIZE`` connections and as many again
    for a burst (docs/deployment.md has the budget), where a command needs one."""
    sizes = (
        {"pool_size": settings.database_pool_size, "max_overflow": settings.database_pool_size}
        if serving
        else {}
    )
    return create_engine(
        settings.database_url,
        statement_timeout_seconds=statement_timeout_seconds,
        transaction_pooled=settings.transaction_pooled,
        **sizes,
    )


def _unnamed_statement() -> str:
    """The unnamed prepared statement: asyncpg's name for it is the empty one."""
    return ""


def _mark_transaction_pooled(dbapi_connection: Any, connection_record: Any) -> None:
    connection_record.info[TRANSACTION_POOLED] = True


def _timeout_each_transaction(milliseconds: int) -> Callable[[Connection], None]:
    def begin(connection: Connection) -> None:
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds:d}")

    return begin


RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
"""PostgreSQL aborted the transaction to break a deadlock, or a serialization conflict:
the same transaction, run again, may well succeed."""
UNAVAILABLE_SQLSTATES = ("08", "53300", "55000", "57P01", "57P02", "57P03")
"""PostgreSQL's connection exceptions, too many connections, a database that does not
accept connections now (``ALLOW_CONNECTIONS false``, as during maintenance), and a server
shutting down or terminating the connection (``pg_terminate_backend``)."""
QUERY_CANCELED = "57014"
"""PostgreSQL stopped a statement: its ``statement_timeout`` ran out, or it was cancelled."""


def sqlstate(error: DBAPIError) -> str | None:
    """The SQLSTATE the driver reported (asyncpg names it ``sqlstate``, others ``pgcode``)."""
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code if isinstance(code, str) else None


def is_retryable(error: BaseException) -> bool:
    """Whether the database aborted a transaction that may succeed when run again."""
    return isinstance(error, DBAPIError) and sqlstate(error) in RETRYABLE_SQLSTATES


def is_timeout(error: BaseException | None) -> bool:
    """Whether the database stopped a statement that ran too long: the request took too
    long, which is neither an outage nor a fault."""
    return isinstance(error, DBAPIError) and sqlstate(error) == QUERY_CANCELED


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached or dropped the connection (a
    condition that passes), rather than that a statement was wrong (a fault) or too slow
    (a timeout)."""
    if isinstance(error, DBAPIError):
        code = sqlstate(error) or ""
        if code == QUERY_CANCELED:
            return False
        return error.connection_invalidated or code.startswith(UNAVAILABLE_SQLSTATES)
    # The pool had no connection to give in time, or connecting failed (the drivers raise
    # the socket's own errors: refused, unreachable, timed out).
    return isinstance(error, PoolTimeout | OSError)


def one_line(error: BaseException) -> str:
    """What the driver said, its first line (SQLAlchemy wraps it as ``orig``), for a log
    line or an operator's message without a traceback."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def create_sessionmaker(
    engine: AsyncEngine, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions of one application; ``info`` reaches every session (its domain rules)."""
    # Objects stay readable after commit: payloads are resolved after the transaction ends.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info or {})
