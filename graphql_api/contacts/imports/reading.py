"""An uploaded CSV or XLSX file as a header and a stream of rows, every problem a
``FileReadError`` with the row, line and column it is at. Takes bytes, a path or a binary
file object; knows nothing of HTTP or of contacts (mapping columns comes after)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from io import BytesIO
from typing import BinaryIO

from graphql_api.contacts.imports import csv_text, xlsx
from graphql_api.contacts.imports.csv_text import Record
from graphql_api.contacts.imports.errors import FileReadError, ReadErrorCode

SAMPLE_ROWS = 5
"""How many rows ``detect`` shows, for the user to recognise the columns by."""

Source = bytes | os.PathLike[str] | BinaryIO
"""The file: its bytes, its path, or a seekable binary file object (read from its start)."""


class FileKind(StrEnum):
    """What a file is read as: told from its first bytes (a zip is an XLSX, anything else a
    CSV) unless the caller names it."""

    CSV = "csv"
    XLSX = "xlsx"


@dataclass(frozen=True)
class Row:
    """One row of values by column header; ``number`` is the row a spreadsheet shows (the
    header is row 1), ``line`` the line of a CSV it starts on (a quoted value may hold
    line breaks)."""

    number: int
    line: int
    values: dict[str, str]


@dataclass
class Table:
    """An open file: its columns, read at once, and its rows, read as they are taken."""

    kind: FileKind
    columns: tuple[str, ...]
    rows: Iterator[Row]
    warnings: tuple[str, ...] = ()
    """What the reader changed to read the file, e.g. a repeated column name it numbered."""
    separator: str | None = None
    sheet: str | None = None
    sheets: tuple[str, ...] = ()
    _lines: csv_text.Lines | None = field(default=None, repr=False)

    @property
    def encoding(self) -> str | None:
        """``utf-8``, ``utf-8-sig`` (with a BOM) or ``windows-1252`` of a CSV, as far as
        it has been read (plain ASCII so far reads as ``utf-8``); None for an XLSX."""
        if self._lines is None:
            return None
        return self._lines.encoding or csv_text.UTF8


@dataclass(frozen=True)
class Detection:
    """What the detect step shows: the columns, the first ``SAMPLE_ROWS`` rows, and how the
    file was read, for the user to check before mapping the columns."""

    kind: FileKind
    columns: tuple[str, ...]
    warnings: tuple[str, ...]
    samples: tuple[Row, ...]
    encoding: str | None
    separator: str | None
    sheet: str | None
    sheets: tuple[str, ...]


@contextmanager
def open_table(
    source: Source,
    *,
    max_bytes: int,
    kind: FileKind | None = None,
    separator: str | None = None,
    sheet: str | None = None,
) -> Iterator[Table]:
    """Opens ``source`` as a table: an XLSX when ``kind`` says so or the file is a zip,
    else a CSV. The header is checked here; rows are checked as they are read, so a bad
    row raises while iterating. ``separator`` (CSV) overrides the one detected from the
    header line; ``sheet`` (XLSX) names the sheet, the first by default."""
    with _opened(source) as stream:
        size = _size(stream)
        if size > max_bytes:
            raise FileReadError(
                ReadErrorCode.TOO_LARGE,
                f"the file is {_mib(size)}, more than the {_mib(max_bytes)} allowed",
            )
        magic = stream.read(4)
        stream.seek(0)
        if magic == xlsx.OLE_MAGIC:
            raise FileReadError(
                ReadErrorCode.UNSUPPORTED,
                "the file is an old Excel file (.xls) or a password-protected one: save it "
                "as XLSX without a password, or as CSV",
            )
        if kind == FileKind.XLSX or (kind is None and magic == xlsx.ZIP_MAGIC):
            if magic != xlsx.ZIP_MAGIC:
                raise FileReadError(ReadErrorCode.NOT_XLSX, "the file is not an XLSX (not a zip)")
            name, names, records = xlsx.read_sheet(stream, sheet)
            columns, warnings, rows = _table(records, f'the sheet "{name}" is empty')
            yield Table(FileKind.XLSX, columns, rows, warnings, sheet=name, sheets=tuple(names))
            return
        lines = csv_text.Lines(stream)
        first = lines.first_text_line()
        if first is None:
            raise FileReadError(ReadErrorCode.EMPTY, "the file is empty")
        chosen = separator or csv_text.detect_separator(first)
        columns, warnings, rows = _table(csv_text.records(lines, chosen), "the file is empty")
        yield Table(FileKind.CSV, columns, rows, warnings, separator=chosen, _lines=lines)


def detect(
    source: Source,
    *,
    max_bytes: int,
    kind: FileKind | None = None,
    separator: str | None = None,
    sheet: str | None = None,
) -> Detection:
    """The columns and first rows of ``source`` (see ``open_table``); a file with a header
    and no rows is refused here already, as the import would be."""
    with open_table(
        source, max_bytes=max_bytes, kind=kind, separator=separator, sheet=sheet
    ) as table:
        samples = []
        for row in table.rows:
            samples.append(row)
            if len(samples) == SAMPLE_ROWS:
                break
        return Detection(
            kind=table.kind,
            columns=table.columns,
            warnings=table.warnings,
            samples=tuple(samples),
            encoding=table.encoding,
            separator=table.separator,
            sheet=table.sheet,
            sheets=table.sheets,
        )


def _table(
    records: Iterator[Record], empty: str
) -> tuple[tuple[str, ...], tuple[str, ...], Iterator[Row]]:
    for number, _line, cells in records:
        if any(cell.strip() for cell in cells):
            columns, warnings = _columns(cells, number)
            return columns, warnings, _rows(records, columns, number)
    raise FileReadError(ReadErrorCode.EMPTY, empty)


def _columns(cells: list[str], row: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The header's names, stripped, and a warning per name renamed. Empty ones at the end
    are dropped (Excel writes ``Naam;Plaats;;``); an empty one between others is refused.
    A name the header has already (ignoring case) gets its count: the second
    ``Voornaam`` is ``Voornaam (2)``. Econobis's contact export repeats the names of a
    contact's own fields for its occupation's contact, and a mapping names columns by
    name, so each must have its own."""
    names = [cell.strip() for cell in cells]
    while not names[-1]:
        names.pop()
    seen: dict[str, int] = {}
    counts: dict[str, int] = {}
    warnings: list[str] = []
    for position, name in enumerate(names, start=1):
        if not name:
            raise FileReadError(
                ReadErrorCode.EMPTY_HEADER,
                f"column {position} has no name in the header; name it or remove it",
                row=row,
            )
        key = name.casefold()
        if key in seen:
            counts[key] = counts.get(key, 1) + 1
            renamed = f"{name} ({counts[key]})"
            while renamed.casefold() in seen:
                counts[key] += 1
                renamed = f"{name} ({counts[key]})"
            warnings.append(
                f'Columns {seen[key]} and {position} are both named "{name}": '
                f'column {position} is read as "{renamed}".'
            )
            names[position - 1] = renamed
            key = renamed.casefold()
        seen[key] = position
    return tuple(names), tuple(warnings)


def _rows(records: Iterator[Record], columns: tuple[str, ...], header: int) -> Iterator[Row]:
    """The rows under the header, blank ones skipped (row numbers stay those of the file);
    refuses a row with fewer values than columns, or a value beyond the last column."""
    read = 0
    for number, line, cells in records:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) < len(columns):
            raise FileReadError(
                ReadErrorCode.ROW_LENGTH,
                f"the row has {len(cells)} of the header's {len(columns)} columns",
                row=number,
                line=line,
            )
        for position in range(len(columns), len(cells)):
            if cells[position].strip():
                raise FileReadError(
                    ReadErrorCode.ROW_LENGTH,
                    f'the row has a value ("{cells[position][:40]}") in column {position + 1}, '
                    f"beyond the header's {len(columns)} columns",
                    row=number,
                    line=line,
                )
        read += 1
        yield Row(number, line, dict(zip(columns, cells, strict=False)))
    if not read:
        raise FileReadError(
            ReadErrorCode.NO_ROWS, "the file has a header but no rows under it", row=header + 1
        )


@contextmanager
def _opened(source: Source) -> Iterator[BinaryIO]:
    if isinstance(source, bytes):
        yield BytesIO(source)
    elif isinstance(source, os.PathLike):
        with open(source, "rb") as stream:
            yield stream
    else:
        source.seek(0)
        yield source


def _size(stream: BinaryIO) -> int:
    size = stream.seek(0, os.SEEK_END)
    stream.seek(0)
    return size


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} bytes"
