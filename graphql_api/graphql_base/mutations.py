"""Running a mutation: one transaction, and domain problems mapped into the payload.

The domain names fields as the domain does (``group_id``, ``composed_of_ids``,
``filter.all.0``); it knows nothing of GraphQL arguments. Each mutation declares once,
with :class:`ErrorPaths`, which argument carries which domain field, and
:func:`run_mutation` is the one place that turns problems into ``UserError``s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import strawberry
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.utils.str_converters import to_camel_case

from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import UserError
from graphql_api.kernel.db import is_retryable, sqlstate
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError
from graphql_api.kernel.writing import WriterTimeout, begin_writing, is_busy, writer_turn

logger = logging.getLogger("graphql_api")

CONFLICT_MESSAGE = "Another change got there first; nothing was changed. Try again."


class Payload(Protocol):
    """A mutation's result type: made with its result fields, or with ``errors`` alone."""

    def __init__(self, *, errors: list[UserError] = ..., **fields: Any) -> None: ...


PayloadT = TypeVar("PayloadT", bound=Payload)


@dataclass(frozen=True)
class ErrorPaths:
    """Where a mutation's domain fields sit among its GraphQL arguments."""

    arguments: Mapping[str, str] = field(default_factory=dict)
    """Domain field -> the argument carrying it, e.g. ``{"group_id": "groupId"}``."""
    input: str | None = "input"
    """The input-object argument that holds every other field; None when there is none."""

    def path(self, domain_field: Sequence[str]) -> list[str] | None:
        """The GraphQL path of a domain field path; None for a problem of the whole call."""
        if not domain_field:
            return None
        head, *rest = domain_field
        tail = [to_camel_case(part) for part in rest]
        if head in self.arguments:
            return [self.arguments[head], *tail]
        outer = [self.input] if self.input else []
        return [*outer, to_camel_case(head), *tail]

    def user_errors(self, problems: Sequence[Problem]) -> list[UserError]:
        return [
            UserError(field=self.path(p.field), code=p.code, message=p.message) for p in problems
        ]


NO_ARGUMENTS = ErrorPaths()
"""For mutations whose only argument is ``input``."""


async def run_mutation(
    info: Info,
    payload: type[PayloadT],
    paths: ErrorPaths,
    work: Callable[[AsyncSession], Awaitable[Mapping[str, Any]]],
) -> PayloadT:
    """Run ``work`` in one transaction and build the payload from the fields it returns;
    on a ``UserInputError`` nothing is kept and the payload carries the errors alone."""
    try:
        fields = await _in_one_transaction(info, work)
        return payload(**fields, errors=[])
    except UserInputError as error:
        problems = error.problems
    except (IntegrityError, _GaveUp, WriterTimeout):
        # A concurrent request won a race the checks could not see (same name, same link),
        # or kept winning it, or (SQLite) kept the write lock for the whole busy timeout.
        problems = (Problem((), ErrorCode.CONFLICT, CONFLICT_MESSAGE),)
    finally:
        # Values loaded before this change may be stale now; later fields load afresh.
        info.context.forget_loaded()
    return payload(errors=paths.user_errors(problems))


class _GaveUp(Exception):
    """Every attempt of a transaction was aborted by the database."""


async def _in_one_transaction(
    info: Info, work: Callable[[AsyncSession], Awaitable[Mapping[str, Any]]]
) -> Mapping[str, Any]:
    """``work`` in one transaction, run again while PostgreSQL aborts it to break a deadlock
    or a serialization conflict, up to ``GRAPHQL_API_TRANSACTION_ATTEMPTS`` times in all:
    the other transaction has gone on, so the next try usually passes.

    The transaction is declared writing before ``work`` reads anything
    (``kernel.writing``): on SQLite it waits for its turn among this process's writers,
    then holds the database's write lock from its start, so its checks and derived
    refreshes see no other writer's change in between, of this process or another. A
    writer that waited the whole busy timeout gives up at once (``WriterTimeout``, then
    ``CONFLICT``): it has waited long enough."""
    attempts = info.context.settings.transaction_attempts
    for attempt in range(1, attempts + 1):
        try:
            async with (
                writer_turn(info.context.db.engine),
                info.context.db.transaction() as session,
            ):
                await begin_writing(session)
                return await work(session)
        except DBAPIError as error:
            if is_busy(error):
                logger.info("the database stayed locked by another writer: %s", error.orig)
                raise WriterTimeout from error
            if not is_retryable(error):
                raise
            logger.info(
                "transaction aborted by the database (SQLSTATE %s), attempt %s of %s",
                sqlstate(error),
                attempt,
                attempts,
            )
            info.context.forget_loaded()
    raise _GaveUp


def given_fields(input_object: Any) -> dict[str, Any]:
    """The input fields the caller sent, by their Python (domain) names: absent ones left
    out, null kept as None."""
    return {
        name: value for name, value in vars(input_object).items() if value is not strawberry.UNSET
    }
