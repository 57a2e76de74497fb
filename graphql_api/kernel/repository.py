"""Set-based look-ups by id that every feature's loaders and services share."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.kernel.db import Base
from graphql_api.kernel.sql import any_of

ModelT = TypeVar("ModelT", bound=Base)


async def rows_by_id(
    session: AsyncSession, model: type[ModelT], ids: Iterable[int]
) -> dict[int, ModelT]:
    """Every row of ``model`` whose id is in ``ids``, in one statement."""
    wanted = set(ids)
    if not wanted:
        return {}
    primary_key: Any = model.id  # type: ignore[attr-defined]
    rows = await session.scalars(select(model).where(any_of(primary_key, wanted)))
    return {row.id: row for row in rows}  # type: ignore[attr-defined]


async def missing_ids(session: AsyncSession, model: type[Base], ids: Iterable[int]) -> list[int]:
    """The ids in ``ids`` that have no row, in the order given."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    primary_key: Any = model.id  # type: ignore[attr-defined]
    found = set(await session.scalars(select(primary_key).where(any_of(primary_key, wanted))))
    return [i for i in wanted if i not in found]


def escape_like(text: str) -> str:
    """Make ``%``, ``_`` and the escape character match literally in a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@functools.cache
def load_by_id(
    model: type[ModelT],
) -> Callable[[AsyncSession, Sequence[int]], Awaitable[list[ModelT | None]]]:
    """A DataLoader batch function for ``model`` by id (one per model, so loaders are shared)."""

    async def load(session: AsyncSession, ids: Sequence[int]) -> list[ModelT | None]:
        found = await rows_by_id(session, model, ids)
        return [found.get(i) for i in ids]

    return load
