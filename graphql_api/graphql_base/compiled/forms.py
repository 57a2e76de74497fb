"""How a field says it can be read from rows: its compiled form, in its ``metadata``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select

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


Spec = ById | Reference | Children | PageOf | FromColumns


def compiled(spec: Spec) -> dict[str, Any]:
    """``metadata`` giving a field its compiled form."""
    return {COMPILED: spec}
