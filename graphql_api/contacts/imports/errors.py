"""The one error type reading a file raises, located at a row and column where it can be."""

from __future__ import annotations

from enum import StrEnum

from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError


class ReadErrorCode(StrEnum):
    """Why a file cannot be read; stable, so a client can branch on it."""

    TOO_LARGE = "FILE_TOO_LARGE"
    EMPTY = "FILE_EMPTY"
    NO_ROWS = "FILE_NO_ROWS"
    ENCODING = "FILE_ENCODING"
    LINE_TOO_LONG = "FILE_LINE_TOO_LONG"
    ROW_TOO_LONG = "FILE_ROW_TOO_LONG"
    MALFORMED = "FILE_MALFORMED"
    EMPTY_HEADER = "FILE_EMPTY_HEADER"
    ROW_LENGTH = "FILE_ROW_LENGTH"
    NOT_XLSX = "FILE_NOT_XLSX"
    UNSUPPORTED = "FILE_UNSUPPORTED"
    UNPACKS_TOO_LARGE = "FILE_UNPACKS_TOO_LARGE"
    UNKNOWN_SHEET = "FILE_UNKNOWN_SHEET"
    FORMULA = "FILE_FORMULA"


class FileReadError(UserInputError):
    """A file, or one row or cell of it, that cannot be read; a ``UserInputError`` so a
    mutation shows it as it shows any other problem. ``row`` is the row number a
    spreadsheet shows (the header is row 1); ``line`` the line of a CSV file where that
    row starts, when it differs; ``column`` the header or column letter at fault."""

    def __init__(
        self,
        code: ReadErrorCode,
        detail: str,
        *,
        row: int | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.code = code
        self.detail = detail
        self.row = row
        self.line = line
        self.column = column
        located = _located(detail, row, line, column)
        super().__init__([Problem(("file",), ErrorCode(code.value), located)])

    @property
    def message(self) -> str:
        return self.problems[0].message


def _located(detail: str, row: int | None, line: int | None, column: str | None) -> str:
    where = []
    if row is not None:
        where.append(f"row {row}" + (f" (line {line})" if line not in (None, row) else ""))
    elif line is not None:
        where.append(f"line {line}")
    if column is not None:
        where.append(f'column "{column}"')
    if not where:
        return detail
    text = ", ".join(where)
    return f"{text[0].upper()}{text[1:]}: {detail}"
