"""What the current HTTP request did, for its log line and the metrics: filled in by
whoever learns it (the statements by the engine, the operation by the schema), read when
the request ends. Outside a request there is none, and nothing is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass
class RequestRecord:
    request_id: str
    statements: int = 0
    """SQL statements sent, the token check's included."""
    operation: str | None = None
    """The GraphQL operation's name, ``anonymous`` when it has none; None before one ran."""
    outcome: str | None = None
    """``ok``, ``errors`` (at fields) or ``invalid`` (never ran); None before one ran."""


_CURRENT: ContextVar[RequestRecord | None] = ContextVar("graphql_api_request", default=None)


def current_request() -> RequestRecord | None:
    return _CURRENT.get()


@contextmanager
def recording(record: RequestRecord) -> Iterator[RequestRecord]:
    """Make ``record`` the current request's while the block runs (and the tasks it starts)."""
    token = _CURRENT.set(record)
    try:
        yield record
    finally:
        _CURRENT.reset(token)


def count_statements(engine: AsyncEngine) -> None:
    """Count each statement ``engine`` sends into the current request's record."""
    event.listen(engine.sync_engine, "before_cursor_execute", _counted)


def _counted(*_: Any) -> None:
    record = _CURRENT.get()
    if record is not None:
        record.statements += 1
