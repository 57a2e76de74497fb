"""Running a mutation: one transaction, domain problems turned into payload errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.errors import UserInputError
from graphql_api.graphql.context import Info
from graphql_api.graphql.errors import UserError

T = TypeVar("T")


async def run_mutation(
    info: Info,
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    arguments: Collection[str] = ("id", "groupId", "contactIds"),
) -> tuple[T | None, list[UserError]]:
    """Run ``work`` in one transaction; on a ``UserInputError`` nothing is kept.

    Returns the result, or None with the errors. Services name fields as the API does;
    a path that is not one of the mutation's ``arguments`` lies inside its ``input``.
    """
    try:
        async with info.context.db.transaction() as session:
            return await work(session), []
    except UserInputError as error:
        return None, [
            UserError(
                field=list(p.field)
                if p.field[:1] and p.field[0] in arguments
                else ["input", *p.field],
                code=p.code,
                message=p.message,
            )
            for p in error.problems
        ]


def given_fields(input_object: Any, renames: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The input fields the caller sent (absent ones left out, null kept as None).

    ``renames`` maps an input field's Python name to the service's name for it.
    """
    renames = renames or {}
    return {
        renames.get(name, name): value
        for name, value in vars(input_object).items()
        if value is not strawberry.UNSET
    }
