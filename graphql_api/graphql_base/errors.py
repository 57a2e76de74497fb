"""How problems reach clients: ``UserError`` in payloads; top-level errors, each with an
``extensions.code`` and server faults masked, otherwise."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLSyntaxError, Lexer, Source, TokenKind
from graphql.validation import ASTValidationRule, ValidationContext
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext, ExecutionResult

from graphql_api.graphql_base.enums import described_enum
from graphql_api.kernel.db import is_timeout, is_unavailable, one_line
from graphql_api.kernel.errors import BrokenValue, ErrorCode

logger = logging.getLogger("graphql_api")

ErrorCodeType = described_enum(
    ErrorCode,
    "Why a change was refused; stable, so clients can branch on it.",
    {
        ErrorCode.REQUIRED: "A value is missing.",
        ErrorCode.TOO_LONG: "A value or a list is longer than allowed.",
        ErrorCode.INVALID: "A value has the wrong form or is not one of those allowed.",
        ErrorCode.INVALID_ID: "An id is malformed, of another type, or not as the API writes it.",
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
        ErrorCode.TOO_SHORT: "The password is too short.",
        ErrorCode.WEAK_PASSWORD: "The password is too easy to guess.",
        ErrorCode.INVALID_TOKEN: "The invitation or reset link is unknown, used or expired.",
        ErrorCode.INVALID_CREDENTIALS: "The e-mail or the password is wrong (never which).",
        ErrorCode.TOO_MANY_ATTEMPTS: "Too many failed logins: wait retryAfterSeconds.",
        ErrorCode.ALREADY_ACTIVE: "The contact already uses the portal.",
        ErrorCode.NOT_EDITABLE: "The group is not changed on the portal (Veranderen op portaal).",
        ErrorCode.ROLE_GROUP: "A group with a neighbourhood role is changed by staff only.",
        ErrorCode.INVALID_TEXT: "A text holds a character that cannot be stored (NUL, half "
        "of a surrogate pair) or, in a name, a control character, a bidirectional control, "
        "or nothing visible.",
        ErrorCode.TEMPLATE_TOO_COSTLY: "Rendering the template would take more loop steps, "
        "output or time than a template may use; the message says which.",
        ErrorCode.JOB_FINISHED: "The job (taak) has finished already; there is nothing to cancel.",
        ErrorCode.INTERNAL: "A job stopped on a fault of the service, not of its input; the "
        "service's log says more.",
        ErrorCode.FILE_TOO_LARGE: "The file is larger than the service takes "
        "(GRAPHQL_API_MAX_UPLOAD_BYTES).",
        ErrorCode.FILE_EMPTY: "The file (or the sheet) is empty.",
        ErrorCode.FILE_NO_ROWS: "The file has a header but no rows under it.",
        ErrorCode.FILE_ENCODING: "The file's text is in no encoding the import reads (UTF-8, "
        "Windows-1252), or in two.",
        ErrorCode.FILE_LINE_TOO_LONG: "A line of the file is longer than a line may be.",
        ErrorCode.FILE_ROW_TOO_LONG: "A row of the file is longer than a row may be (an unclosed "
        "quote, often).",
        ErrorCode.FILE_MALFORMED: "The file is not a CSV the import can read at that place.",
        ErrorCode.FILE_EMPTY_HEADER: "A column of the header has no name.",
        ErrorCode.FILE_ROW_LENGTH: "A row has fewer or more values than the header has columns.",
        ErrorCode.FILE_NOT_XLSX: "The file is not an Excel workbook (XLSX).",
        ErrorCode.FILE_UNSUPPORTED: "The file is of a kind the import does not read (an old .xls, "
        "a protected workbook).",
        ErrorCode.FILE_UNPACKS_TOO_LARGE: "The workbook unpacks to more than the import takes (a "
        "zip bomb, or too large).",
        ErrorCode.FILE_UNKNOWN_SHEET: "The workbook has no sheet of that name.",
        ErrorCode.FILE_FORMULA: "A cell holds a formula: the import takes values only.",
    },
)


@strawberry.type(description="A problem with a mutation's input that the caller can correct.")
class UserError:
    field: list[str] | None = strawberry.field(
        description='Path to the argument or input field at fault, e.g. `["input", "name"]`.'
    )
    code: ErrorCodeType = strawberry.field(description="Stable machine-readable reason.")
    message: str = strawberry.field(description="What is wrong, in plain English.")


PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
INVALID_CURSOR = "INVALID_CURSOR"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
UNKNOWN_DOCUMENT = "UNKNOWN_DOCUMENT"
"""A ``documentId`` names no trusted document (docs/http.md, "Trusted documents")."""
DOCUMENT_NOT_TRUSTED = "DOCUMENT_NOT_TRUSTED"
"""Only trusted documents run, and the request's ``query`` is none of them."""
AMBIGUOUS_DOCUMENT = "AMBIGUOUS_DOCUMENT"
"""A request sends both a ``query`` and a ``documentId``."""
TIMEOUT = "TIMEOUT"
"""The request ran out of its time budget (``GRAPHQL_API_REQUEST_TIMEOUT_SECONDS``)."""
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
"""The database cannot be reached just now; the request may be sent again later."""


class PublicError(GraphQLError):
    """A top-level error whose message is meant for the client (never masked)."""

    def __init__(self, message: str, code: str = BAD_USER_INPUT) -> None:
        super().__init__(message, extensions={"code": code})


def timeout_error() -> PublicError:
    """The error of a statement the database stopped at the time limit."""
    return PublicError(
        "A statement took longer than the time limit and was stopped; nothing the request "
        "would have changed was kept. Ask for less at once.",
        TIMEOUT,
    )


def unavailable_error() -> PublicError:
    """The error of a request the database could not serve (no internals in it)."""
    return PublicError(
        "The database cannot be reached just now; try again shortly.", SERVICE_UNAVAILABLE
    )


def _is_internal(error: GraphQLError) -> bool:
    # Parse, validation and variable errors carry no path and are written for clients;
    # anything a resolver raised that is not a PublicError (or a stored value it cannot
    # use, which says which and why) may hold internals.
    original = error.original_error
    return (
        error.path is not None
        and original is not None
        and not isinstance(original, GraphQLError | BrokenValue)
    )


def log_internal_errors(errors: list[GraphQLError]) -> None:
    """Log server faults with their traceback, and stored values that cannot be used (an
    operator must mend them); client mistakes are not the server's news."""
    for error in errors:
        if isinstance(error.original_error, BrokenValue):
            logger.warning("broken stored value at %s: %s", error.path, error.original_error)
        elif not _is_internal(error):
            continue
        elif error.extensions.get("code") == TIMEOUT:
            logger.info("a statement ran past the time limit at %s", error.path)
        elif error.extensions.get("code") == SERVICE_UNAVAILABLE:
            # A condition of the moment, not a fault: one line, no traceback.
            cause = one_line(error.original_error)  # type: ignore[arg-type]
            logger.warning("the database is unavailable at %s: %s", error.path, cause)
        else:
            logger.error("unexpected error at %s", error.path, exc_info=error.original_error)


class MaskInternalErrors(MaskErrors):
    """Replace server faults with a generic error; the details go to the log only."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_internal, error_message="Internal server error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        original: Any = error.original_error
        if is_timeout(original) or is_unavailable(original):
            public = timeout_error() if is_timeout(original) else unavailable_error()
            return GraphQLError(
                public.message, error.nodes, path=error.path, extensions=public.extensions
            )
        return GraphQLError(
            message=self.error_message,
            nodes=error.nodes,
            path=error.path,
            extensions={"code": INTERNAL_SERVER_ERROR},
        )


def never_executed(result: ExecutionResult) -> bool:
    """Whether a request failed before execution (it did not parse or validate, or its
    variables did not fit): only errors, none of them at a field."""
    return result.data is None and all(error.path is None for error in result.errors or [])


def give_codes(errors: list[GraphQLError], context: ExecutionContext, max_tokens: int) -> None:
    """Give each error without an ``extensions.code`` the code of the step that failed, so
    a client can branch on every error: the document did not parse, or had more tokens
    than allowed; it did not validate; the variables or the operation name did not fit
    it; or the server failed a field (masked later)."""
    for error in errors:
        if "code" not in error.extensions:
            error.extensions["code"] = _failed_step(error, context, max_tokens)


def _failed_step(error: GraphQLError, context: ExecutionContext, max_tokens: int) -> str:
    original = error.original_error
    if isinstance(original, BrokenValue):
        return original.code
    if original is not None and not isinstance(original, GraphQLError):
        if is_timeout(original):
            return TIMEOUT
        return SERVICE_UNAVAILABLE if is_unavailable(original) else INTERNAL_SERVER_ERROR
    if isinstance(error, GraphQLSyntaxError):
        return LIMIT_EXCEEDED if _tokens_exceed(context.query or "", max_tokens) else PARSE_FAILED
    if error.path is not None:
        return INTERNAL_SERVER_ERROR  # a field the server failed to complete, e.g. a null
    # Strawberry records the result only once execution ran: before, validation failed.
    return VALIDATION_FAILED if context.result is None else BAD_USER_INPUT


def _tokens_exceed(document: str, limit: int) -> bool:
    """Whether ``document`` has more than ``limit`` tokens, as the parser counts them."""
    lexer = Lexer(Source(document))
    try:
        for _ in range(limit + 1):
            if lexer.advance().kind is TokenKind.EOF:
                return False
    except GraphQLError:
        return False
    return True


def limit_rule(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """``rule``, a limit on documents, reporting its errors as ``LIMIT_EXCEEDED``."""

    class Limit(rule):  # type: ignore[valid-type, misc]
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(_LimitContext(context))

    return Limit


class _LimitContext:
    """A validation context whose errors are ``LIMIT_EXCEEDED``; the rest is the context's."""

    def __init__(self, context: ValidationContext) -> None:
        self._context = context

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def report_error(self, error: GraphQLError) -> None:
        error.extensions["code"] = LIMIT_EXCEEDED
        self._context.report_error(error)


class CodedSchema(strawberry.Schema):
    """Strawberry's schema, giving every error a code and logging only server faults: its
    own would log every client error (a document that does not parse, "Log in first") as
    an error with a traceback. Both endpoints' schemas are one."""

    def __init__(self, *args: Any, max_tokens: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_tokens = max_tokens

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Called once with each list of errors, before any is masked.
        if execution_context is not None:
            give_codes(errors, execution_context, self.max_tokens)
        log_internal_errors(errors)
