"""How a field says it can be read from rows: its compiled form, in its ``metadata``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Exists, ScalarSelect, Select, select
from sqlalchemy.orm import aliased

from graphql_api.kernel.pagination import Ordering

COMPILED = "compiled.read"
"""Key of a field's compiled form in its ``strawberry.field(metadata=...)``."""


class NotCompiled(Exception):
    """This document, or this request of it, is answered by the resolvers."""


@dataclass(frozen=True)
class ById:
    """A root field: the ``model`` row whose global id (of ``type_name``) is the ``id``
    argument; null when there is none."""

    model: type
    type_name: str


@dataclass(frozen=True)
class Reference:
    """The ``model`` row whose id the parent row's ``key`` column holds; null for none."""

    model: type
    key: str


@dataclass(frozen=True)
class Children:
    """The ``model`` rows whose ``parent_key`` column holds the parent row's id, sorted by
    the ``order`` columns."""

    model: type
    parent_key: str
    order: tuple[str, ...]


@dataclass(frozen=True)
class PageOf:
    """A connection: a page of ``query(parent row, arguments)`` (the parent None at the
    root), which gives the statement and its ordering, or None to leave the arguments to
    the resolver. Below the root it is planned for one parent row only.

    ``query`` reads nothing but the arguments and the parent's ``id`` and
    ``parent_columns``: the statements it gives are kept by these and used again."""

    model: type
    query: Callable[[Any, Mapping[str, Any]], tuple[Select[Any], Ordering] | None]
    parent_columns: tuple[str, ...] = ()
    """Columns of the parent row ``query`` reads."""


@dataclass(frozen=True)
class FromColumns:
    """A value ``compute(row)`` makes of the parent row's ``columns`` (a model property, a
    maintained count)."""

    columns: tuple[str, ...]
    compute: Callable[[Any], Any]


@dataclass(frozen=True, eq=False)
class PluginColumn:
    """A value of another table (a plugin's own): its ``column`` in the row whose ``key``
    column holds the parent row's id (a contact's, a group's), or null when there is none.
    ``where``: conditions on that table the row must meet besides. ``key`` is unique (a
    primary key, say): one row per parent at most.

    The parent's statement reads it, by a scalar subquery per row."""

    column: Any
    key: Any
    where: tuple[Any, ...] = ()

    def expression(self, model: type, parent: Any) -> ColumnElement[Any]:
        """The value for rows of ``parent`` (``model``'s table or an alias of it)."""
        found = select(self.column).where(self.key == parent.id, *self.where)
        return found.correlate(parent).scalar_subquery()


@dataclass(frozen=True, eq=False)
class SqlValue:
    """A value SQL computes for the parent row: ``sql(parent)`` is a column expression
    over ``parent``, the parent's table (``parent.id``, ``parent.city``; never the model's
    own name), such as ``exists()`` or ``select(...).scalar_subquery()`` of the rows
    referring to ``parent.id``.

    The parent's statement reads it: an ``exists`` or scalar subquery as it is, correlated
    to the parent's table alone, anything else by a subquery on the parent's id."""

    sql: Callable[[Any], Any]

    def expression(self, model: type, parent: Any) -> ColumnElement[Any]:
        """The value for rows of ``parent`` (``model``'s table or an alias of it)."""
        value = self.sql(parent)
        if isinstance(value, Exists | ScalarSelect):
            # Correlated explicitly: the parent's statement may join tables the subquery
            # reads too (a page of members joins memberships), which it must not take over.
            return value.correlate(parent)
        # Over an alias of the parent's table, so subqueries inside correlate to it alone.
        row = aliased(model)
        own = select(self.sql(row)).where(row.id == parent.id)
        return own.correlate(parent).scalar_subquery()


Spec = ById | Reference | Children | PageOf | FromColumns | PluginColumn | SqlValue


def compiled(spec: Spec) -> dict[str, Any]:
    """``metadata`` giving a field its compiled form."""
    return {COMPILED: spec}
