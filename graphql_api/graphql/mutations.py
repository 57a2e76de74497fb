"""Running a mutation: one transaction, domain problems turned into payload errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import strawberry
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.errors import ErrorCode, Problem, UserInputError
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
        problems = error.problems
    except IntegrityError:
        # A concurrent request won a race the checks could not see (same name, same link).
        problems = (Problem((), ErrorCode.CONFLICT, CONFLICT_MESSAGE),)
    finally:
        # Values loaded before this change may be stale now; later fields load afresh.
        info.context.forget_loaded()
    return None, [
        UserError(field=_path(p.field, arguments), code=p.code, message=p.message) for p in problems
    ]


def _path(field: Sequence[str], arguments: Collection[str]) -> list[str] | None:
    if not field:
        return None
    return list(field) if field[0] in arguments else ["input", *field]


CONFLICT_MESSAGE = "Another change got there first; nothing was changed. Try again."


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
