"""SELECTs run on the driver's own connection, for the read path that must be fastest.

SQLAlchemy's execution of a statement costs more CPU than asyncpg's own ``fetch`` of it
(about 0.1 ms against 0.02 ms here), and most of it is work a repeated read need not do
again: compiling, building a context and a result, translating each row. ``DriverReads``
compiles each shape of statement once (keyed as SQLAlchemy keys its own cache, so literal
values become parameters), applies the same parameter and result processing the column
types define, and hands rows over as named tuples. Connections come from the engine's
pool, whose events fire as usual (a request's timeout interrupts them); statements are
announced to the engine's ``before_cursor_execute`` listeners, with no SQLAlchemy
connection, so the per-request count of statements and its tests see them.

Only plain SELECTs with positional parameters are taken; a statement with an expanding
``IN`` is refused (``NotRunnable``), for the caller to run another way.
"""

from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

SHAPES_KEPT = 2000
"""Compiled statements a process keeps, by shape."""


class _Shape:
    """One compiled statement: its text, how to make its parameters and its rows."""

    def __init__(self, statement: Select[Any], key: Any, engine: AsyncEngine) -> None:
        dialect = engine.dialect
        # With its cache key, the compiled form takes the literal values of any statement
        # of the same shape (construct_params' extracted_parameters), as SQLAlchemy's own
        # cache does.
        self.compiled = dialect.statement_compiler(dialect, statement, cache_key=key)
        self.sql = self.compiled.string
        self.runnable = bool(self.compiled.positional) and not any(
            bind.expanding for bind in self.compiled.binds.values()
        )
        names = self.compiled.positiontup or []
        self.parameters = [
            (name, self.compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        ]
        columns = list(statement.selected_columns)
        # Unnamed columns (a count) get positional names; rows are read by name otherwise.
        keys = [str(column.key) for column in columns]
        self.row = namedtuple("Row", keys, rename=True)  # type: ignore[misc]
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self.convert: Callable[[Any], Any] = _converter(self.row, processors)

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [
            values[name] if process is None else process(values[name])
            for name, process in self.parameters
        ]


def _converter(row: Any, processors: list[Any]) -> Callable[[Any], Any]:
    if not any(processors):
        return lambda raw: row._make(raw)
    return lambda raw: row._make(
        value if process is None else process(value)
        for process, value in zip(processors, raw, strict=True)
    )


@dataclass(frozen=True)
class Prepared:
    """A statement ready to run again and again: its shape and its literal values."""

    statement: Select[Any]
    shape: _Shape
    literals: Any
    """The values of its anonymous parameters, as its cache key extracted them."""


class NotRunnable(Exception):
    """A statement the driver is not given directly (an expanding ``IN``)."""


class DriverReads:
    """Runs SELECTs of one engine on its pool's driver connections."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgresql = engine.dialect.name == "postgresql"
        self._shapes: OrderedDict[Any, _Shape] = OrderedDict()

    def prepare(self, statement: Select[Any]) -> Prepared:
        """``statement`` compiled (once for its shape), to be run by ``rows``;
        ``NotRunnable`` for one that must go through SQLAlchemy."""
        key = statement._generate_cache_key()
        if key is None:
            raise NotRunnable("a statement SQLAlchemy does not cache")
        shape = self._shapes.get(key.key)
        if shape is None:
            shape = _Shape(statement, key, self.engine)
            if not shape.runnable:
                raise NotRunnable("an expanding IN, or a dialect without positional parameters")
            self._shapes[key.key] = shape
            if len(self._shapes) > SHAPES_KEPT:
                self._shapes.popitem(last=False)
        else:
            self._shapes.move_to_end(key.key)
        return Prepared(statement, shape, key.bindparams)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A driver connection lent by the engine's pool (its checkout and checkin events
        fire as for any other), outside any transaction: each statement sees what was
        committed before it."""
        lent = await greenlet_spawn(self.engine.sync_engine.pool.connect)
        try:
            yield lent.driver_connection
        except Exception as error:
            # A connection a statement failed on (the server gone, say) is not lent again:
            # the pool opens another when it needs one.
            await greenlet_spawn(lent.invalidate, error)
            raise
        finally:
            await greenlet_spawn(lent.close)

    async def rows(
        self, connection: Any, prepared: Prepared, parameters: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """The rows of a prepared statement (with ``parameters`` for its named bind
        parameters), as named tuples with the attributes SQLAlchemy's rows have."""
        shape = prepared.shape
        values = shape.compiled.construct_params(
            dict(parameters or {}), extracted_parameters=prepared.literals
        )
        arguments = shape.arguments(values)
        dispatch = self.engine.sync_engine.dispatch
        if dispatch.before_cursor_execute:
            dispatch.before_cursor_execute(None, None, shape.sql, arguments, None, False)
        if self.postgresql:
            raw = await connection.fetch(shape.sql, *arguments)
        else:
            async with connection.execute(shape.sql, arguments) as cursor:
                raw = await cursor.fetchall()
        return [shape.convert(row) for row in raw]
