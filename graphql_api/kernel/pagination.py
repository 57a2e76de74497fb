"""Keyset pagination: pages are found by the last row seen, never by OFFSET.

A cursor is the ordering key of a row, made opaque. Seeking past it costs the same on
page 1 and page 1,000, and rows added meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, tuple_

from graphql_api.kernel.validation import FIRST_YEAR, LAST_YEAR, MAX_ID, text_problem

RowT = TypeVar("RowT")


class InvalidCursor(ValueError):
    """The cursor was not made by this API (or by this ordering)."""


@dataclass(frozen=True)
class Ordering:
    """The columns a list is sorted by (the last one unique), all ascending or all descending."""

    columns: tuple[ColumnElement[Any], ...]
    descending: bool = False

    def apply(self, query: Select[Any]) -> Select[Any]:
        return query.order_by(*(c.desc() if self.descending else c.asc() for c in self.columns))

    def after(self, query: Select[Any], key: Sequence[Any]) -> Select[Any]:
        """Keep only rows strictly past ``key`` in this ordering."""
        if len(key) != len(self.columns):
            raise InvalidCursor("cursor does not fit this list")
        bound = tuple_(
            *(
                bindparam(None, value, type_=c.type)
                for c, value in zip(self.columns, key, strict=True)
            )
        )
        row = tuple_(*self.columns)
        return query.where(row < bound if self.descending else row > bound)


@dataclass(frozen=True)
class Page(Generic[RowT]):
    """One page of rows with the ordering key of each and whether more follow."""

    rows: list[RowT]
    keys: list[tuple[Any, ...]]
    has_next_page: bool
    has_previous_page: bool


MAX_CURSOR_LENGTH = 1200
"""Longer than any cursor this API writes (a name of 800 characters and an id)."""


def encode_cursor(key: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode()


def decode_cursor(cursor: str, ordering: Ordering) -> list[Any]:
    """The key a cursor stands for, checked as strictly as the columns it is compared with;
    only a cursor exactly as ``encode_cursor`` writes it is taken."""
    if len(cursor) > MAX_CURSOR_LENGTH or not cursor.isascii():
        raise InvalidCursor("malformed cursor")
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as error:
        raise InvalidCursor("malformed cursor") from error
    if not isinstance(plain, list) or len(plain) != len(ordering.columns):
        raise InvalidCursor("cursor does not fit this list")
    key = [_key_part(column, value) for column, value in zip(ordering.columns, plain, strict=True)]
    if encode_cursor(key) != cursor:
        raise InvalidCursor("malformed cursor")
    return key


def _key_part(column: ColumnElement[Any], value: Any) -> Any:
    """One value of a cursor, checked as strictly as the column it is compared with."""
    python_type = column.type.python_type
    if python_type is datetime and isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as error:
            raise InvalidCursor("malformed cursor") from error
        if value.utcoffset() != timedelta(0) or not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise InvalidCursor("cursor does not fit this list")
    if not isinstance(value, python_type) or isinstance(value, bool):
        raise InvalidCursor("cursor does not fit this list")
    if isinstance(value, int) and not 0 <= value <= MAX_ID:
        raise InvalidCursor("cursor does not fit this list")
    if isinstance(value, str):
        length = getattr(column.type, "length", None)
        if text_problem(value) is not None or (length is not None and len(value) > length):
            raise InvalidCursor("cursor does not fit this list")
    return value


async def fetch_page(
    session: Any,
    query: Select[Any],
    ordering: Ordering,
    *,
    first: int,
    after: str | None,
    key_of: Any,
) -> Page[Any]:
    """Run ``query`` for one page: ``first`` rows after the ``after`` cursor.

    ``key_of(row)`` gives a row's ordering key; one extra row is read to know if more follow.
    """
    if after is not None:
        query = ordering.after(query, decode_cursor(after, ordering))
    rows = list(await session.scalars(ordering.apply(query).limit(first + 1)))
    has_next = len(rows) > first
    rows = rows[:first]
    return Page(
        rows=rows,
        keys=[tuple(key_of(row)) for row in rows],
        has_next_page=has_next,
        has_previous_page=after is not None,
    )
