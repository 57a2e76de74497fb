"""Errors a caller can correct, raised by the domain services and shown as ``UserError``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable machine-readable reasons; clients branch on these, never on messages."""

    REQUIRED = "REQUIRED"
    TOO_LONG = "TOO_LONG"
    INVALID = "INVALID"
    INVALID_ID = "INVALID_ID"
    NOT_FOUND = "NOT_FOUND"
    NAME_TAKEN = "NAME_TAKEN"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    TEMPLATE_REQUIRED = "TEMPLATE_REQUIRED"
    END_BEFORE_START = "END_BEFORE_START"
    UNKNOWN_ROLE = "UNKNOWN_ROLE"
    TOO_MANY = "TOO_MANY"
    NOT_STATIC = "NOT_STATIC"
    ALREADY_STATIC = "ALREADY_STATIC"
    CYCLE = "CYCLE"
    GROUP_IN_USE = "GROUP_IN_USE"
    DUPLICATE = "DUPLICATE"
    KIND_CONFLICT = "KIND_CONFLICT"
    HAS_MEMBERS = "HAS_MEMBERS"
    CONFLICT = "CONFLICT"
    ROLE_CONFLICT = "ROLE_CONFLICT"
    ROLE_IN_USE = "ROLE_IN_USE"
    TEMPLATE_IN_USE = "TEMPLATE_IN_USE"
    FORBIDDEN = "FORBIDDEN"
    UNKNOWN_PERMISSION = "UNKNOWN_PERMISSION"
    STAFF_ROLE_IN_USE = "STAFF_ROLE_IN_USE"
    BUILT_IN_ROLE = "BUILT_IN_ROLE"
    LAST_ADMIN = "LAST_ADMIN"
    ALREADY_REVOKED = "ALREADY_REVOKED"
    TOO_SHORT = "TOO_SHORT"
    WEAK_PASSWORD = "WEAK_PASSWORD"
    INVALID_TOKEN = "INVALID_TOKEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    ALREADY_ACTIVE = "ALREADY_ACTIVE"
    NOT_EDITABLE = "NOT_EDITABLE"
    ROLE_GROUP = "ROLE_GROUP"
    INVALID_TEXT = "INVALID_TEXT"
    TEMPLATE_TOO_COSTLY = "TEMPLATE_TOO_COSTLY"
    JOB_FINISHED = "JOB_FINISHED"
    INTERNAL = "INTERNAL"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    FILE_EMPTY = "FILE_EMPTY"
    FILE_NO_ROWS = "FILE_NO_ROWS"
    FILE_ENCODING = "FILE_ENCODING"
    FILE_LINE_TOO_LONG = "FILE_LINE_TOO_LONG"
    FILE_ROW_TOO_LONG = "FILE_ROW_TOO_LONG"
    FILE_MALFORMED = "FILE_MALFORMED"
    FILE_EMPTY_HEADER = "FILE_EMPTY_HEADER"
    FILE_ROW_LENGTH = "FILE_ROW_LENGTH"
    FILE_NOT_XLSX = "FILE_NOT_XLSX"
    FILE_UNSUPPORTED = "FILE_UNSUPPORTED"
    FILE_UNPACKS_TOO_LARGE = "FILE_UNPACKS_TOO_LARGE"
    FILE_UNKNOWN_SHEET = "FILE_UNKNOWN_SHEET"
    FILE_FORMULA = "FILE_FORMULA"


class BrokenValue(Exception):
    """A stored value the service cannot use, written past validation (by hand, by an
    older version): only the fields that need it answer, with ``code`` and this message;
    the rest of an answer, and every other write, go on."""

    code = "BROKEN_VALUE"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (field path), what (code) and why (message)."""

    field: tuple[str, ...]
    code: ErrorCode | str
    """One of ``ErrorCode``, or a code a plugin declared (``EXAMPLE_TOO_LOUD``)."""
    message: str


class UserInputError(Exception):
    """Raised by a service to abort its transaction with problems the caller can fix."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = tuple(problems)

    def moved(self, field: str) -> UserInputError:
        """The same problems, each on ``field`` instead of the field its service named:
        for a service called on the caller's behalf (``name`` of a group an import
        makes is the import's ``new_group_name``)."""
        return UserInputError([Problem((field,), p.code, p.message) for p in self.problems])

    @classmethod
    def single(cls, field: Sequence[str], code: ErrorCode, message: str) -> UserInputError:
        return cls([Problem(tuple(field), code, message)])


class Problems:
    """Collects problems so one call reports all of them, then raises once."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, field: Sequence[str], code: ErrorCode, message: str) -> None:
        self.items.append(Problem(tuple(field), code, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise UserInputError(self.items)
