"""How problems reach clients: ``UserError`` in payloads, masked top-level errors otherwise."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from graphql_api.kernel.errors import ErrorCode

logger = logging.getLogger("graphql_api")

ErrorCodeType = strawberry.enum(
    ErrorCode,
    name="ErrorCode",
    description="Why a change was refused; stable, so clients can branch on it.",
)


@strawberry.type(description="A problem with a mutation's input that the caller can correct.")
class UserError:
    field: list[str] | None = strawberry.field(
        description='Path to the argument or input field at fault, e.g. `["input", "name"]`.'
    )
    code: ErrorCodeType = strawberry.field(description="Stable machine-readable reason.")
    message: str = strawberry.field(description="What is wrong, in plain English.")


class PublicError(GraphQLError):
    """A top-level error whose message is meant for the client (never masked)."""

    def __init__(self, message: str, code: str = "BAD_USER_INPUT") -> None:
        super().__init__(message, extensions={"code": code})


def _is_internal(error: GraphQLError) -> bool:
    # Parse, validation and variable errors carry no path and are written for clients;
    # anything a resolver raised that is not a PublicError may hold internals.
    original = error.original_error
    return (
        error.path is not None and original is not None and not isinstance(original, GraphQLError)
    )


def log_internal_errors(errors: list[GraphQLError]) -> None:
    """Log server faults with their traceback; client mistakes are not the server's news."""
    for error in errors:
        if _is_internal(error):
            logger.error("unexpected error at %s", error.path, exc_info=error.original_error)


class MaskInternalErrors(MaskErrors):
    """Replace server faults with a generic error; the details go to the log only."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_internal, error_message="Internal server error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return GraphQLError(
            message=self.error_message,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR"},
        )
