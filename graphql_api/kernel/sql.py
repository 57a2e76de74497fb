"""SQL text with bound parameters, for statements whose shape follows the group graph.

Membership of derived groups is one statement with a CTE per group; with hundreds of
groups, building and compiling that through SQLAlchemy's expression language costs more
than running it. Writing the text directly is cheap, and every value is still bound.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Boolean, Integer, String, TextClause, bindparam, column, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.selectable import TextualSelect
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator, TypeEngine

PLACEHOLDER = re.compile(r":(p\d+)\b")


class SqlText:
    """Collects bound parameters while a statement is written."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self._binds: list[Any] = []

    def bind(self, value: Any, type_: TypeEngine[Any] | None = None) -> str:
        """A placeholder for ``value``."""
        name = f"p{len(self._binds)}"
        self._binds.append(bindparam(name, value, type_=type_))
        return f":{name}"

    def ints(self, values: list[int]) -> str:
        """Placeholders for a list of integers, for ``IN (...)``."""
        return ", ".join(self.bind(int(v), Integer()) for v in values)

    def codepoint_order(self, expression: str) -> str:
        """``expression`` compared by code point, as SQLite always compares text."""
        return f'({expression}) COLLATE "C"' if self.dialect == "postgresql" else expression

    def statement(self, sql: str) -> TextClause:
        """The text with the parameters it uses bound (a text may use only some of them)."""
        used = set(PLACEHOLDER.findall(sql))
        return text(sql).bindparams(*(b for b in self._binds if b.key in used))

    def contact_ids(self, sql: str) -> TextualSelect:
        """A statement selecting one ``contact_id`` column, usable inside ``IN (...)``."""
        return self.statement(sql).columns(column("contact_id", Integer))


class IdList(TypeDecorator[list[int]]):
    """A list of integer ids as one bound parameter: an array on PostgreSQL, JSON text on
    SQLite (read back with ``json_each``)."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(Integer()))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: list[int] | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return json.dumps(value)


class TextList(IdList):
    """A list of texts as one bound parameter, as ``IdList`` is of ids."""

    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(String()))
        return dialect.type_descriptor(String())


class AnyOf(ColumnElement[bool]):
    """``column`` is one of a list of ids (or texts), in a statement whose text is the
    same for any number of them: compiled and prepared once, where ``IN`` is re-rendered
    per length, and SQLite's driver keeps every text it prepared, up to 128."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]

    def __init__(
        self, column: ColumnElement[Any], ids: Iterable[int] | Iterable[str] | BindParameter[Any]
    ) -> None:
        self.column = column
        if isinstance(ids, BindParameter):
            self.ids = ids
            return
        values = list(ids)
        if values and isinstance(values[0], str):
            self.ids = bindparam(None, [str(v) for v in values], type_=TextList())
        else:
            self.ids = bindparam(None, [int(v) for v in values], type_=IdList())


@compiles(AnyOf, "postgresql")
def _any_of_postgresql(element: AnyOf, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY({compiler.process(element.ids, **kw)})"


@compiles(AnyOf)
def _any_of(element: AnyOf, compiler: Any, **kw: Any) -> str:
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    return f"{column} IN (SELECT value FROM json_each({ids}))"


def any_of(column: Any, ids: Iterable[int] | Iterable[str] | BindParameter[Any]) -> AnyOf:
    """``column`` is one of ``ids`` (integers, or texts), or of the ids later bound to
    ``id_list(name)`` (see ``AnyOf``)."""
    return AnyOf(column, ids)


def id_list(name: str) -> BindParameter[Any]:
    """A parameter named ``name`` for a list of ids, bound when the statement runs."""
    return bindparam(name, type_=IdList())
