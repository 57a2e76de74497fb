"""How problems reach clients: ``UserError`` in payloads, masked top-level errors otherwise."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from graphql_api.api.enums import described_enum
from graphql_api.kernel.errors import ErrorCode

logger = logging.getLogger("graphql_api")

ErrorCodeType = described_enum(
    ErrorCode,
    "Why a change was refused; stable, so clients can branch on it.",
    {
        ErrorCode.REQUIRED: "A value is missing.",
        ErrorCode.TOO_LONG: "A value or a list is longer than allowed.",
        ErrorCode.INVALID: "A value has the wrong form or is not one of those allowed.",
        ErrorCode.INVALID_ID: "An id is malformed or of another type.",
        ErrorCode.NOT_FOUND: "An id names nothing that exists (or that you may see).",
        ErrorCode.NAME_TAKEN: "The name is already used.",
        ErrorCode.EMAIL_TAKEN: "A user with this e-mail address exists.",
        ErrorCode.TEMPLATE_REQUIRED: "E-mail on new members needs a template.",
        ErrorCode.END_BEFORE_START: "The end date lies before the start date.",
        ErrorCode.UNKNOWN_ROLE: "No registered neighbourhood role has this key.",
        ErrorCode.TOO_MANY: "More items than one call may name.",
        ErrorCode.NOT_STATIC: "Only a static group has explicit members.",
        ErrorCode.ALREADY_STATIC: "The group is static already.",
        ErrorCode.CYCLE: "The group would contain itself.",
        ErrorCode.GROUP_IN_USE: "Other groups are built from this group.",
        ErrorCode.DUPLICATE: "An item is listed twice.",
        ErrorCode.KIND_CONFLICT: "A group is dynamic or composite, not both.",
        ErrorCode.HAS_MEMBERS: "The group still has explicit members.",
        ErrorCode.CONFLICT: "A concurrent change got there first; try again.",
        ErrorCode.ROLE_CONFLICT: "The contact already holds another neighbourhood role.",
        ErrorCode.ROLE_IN_USE: "Members hold the group's neighbourhood role.",
        ErrorCode.TEMPLATE_IN_USE: "Groups send this e-mail template.",
        ErrorCode.FORBIDDEN: "You lack the permission the call needs; the message names it.",
        ErrorCode.UNKNOWN_PERMISSION: "No permission has this name.",
        ErrorCode.STAFF_ROLE_IN_USE: "Users hold this staff role.",
        ErrorCode.BUILT_IN_ROLE: "The built-in staff roles cannot be changed.",
        ErrorCode.LAST_ADMIN: "The change would leave no active admin.",
        ErrorCode.ALREADY_REVOKED: "The API token is revoked already.",
    },
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
