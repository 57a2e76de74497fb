"""A CSV file as decoded lines and cells, read incrementally from a binary stream: memory
holds one line (at most ``MAX_LINE_BYTES``) and one row (at most ``MAX_ROW_BYTES``), never
the file."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import BinaryIO

from graphql_api.contacts.imports.errors import FileReadError, ReadErrorCode

MAX_LINE_BYTES = 64 * 1024
"""The longest line read; a longer one is refused before it is read whole."""
MAX_ROW_BYTES = 128 * 1024
"""The longest row, over all its lines (a quoted value may hold line breaks): an unclosed
quote would otherwise swallow the rest of the file into one value. It equals the csv
module's own limit on a value (``csv.field_size_limit()``, left as it is: it is global to
the process), so this one, which names the row, is met first."""

SEPARATORS = (",", ";", "\t", "|")
"""The separators a caller may choose instead of the one detected."""

_CHUNK_BYTES = 64 * 1024
_END_OF_LINE = re.compile(rb"\r\n|\r|\n")
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF8 = "utf-8"
UTF8_BOM = "utf-8-sig"
WINDOWS_1252 = "windows-1252"

Record = tuple[int, int, list[str]]
"""A row as read: its number (the header is 1), the line it starts on, its cells."""


def _raw_lines(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of ``stream`` with their endings (``\\n``, ``\\r\\n`` or a lone ``\\r``
    as old Mac Excel writes); the buffer never holds more than one chunk past the line
    limit, so a 50 MB line is refused after 64 KiB."""
    buffer = b""
    while True:
        chunk = stream.read(_CHUNK_BYTES)
        buffer += chunk
        start = 0
        while match := _END_OF_LINE.search(buffer, start):
            if match.group() == b"\r" and match.end() == len(buffer) and chunk:
                break  # a "\r\n" may be split across two chunks
            yield buffer[start : match.end()]
            start = match.end()
        buffer = buffer[start:]
        if len(buffer) > MAX_LINE_BYTES:
            yield buffer  # the caller refuses it as too long
            return
        if not chunk:
            if buffer:
                yield buffer
            return


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode(UTF8)
    except UnicodeDecodeError:
        return False
    return True


class Lines:
    """The decoded lines of a CSV file, the encoding decided at the first line that is not
    plain ASCII: UTF-8 when it decodes as UTF-8 (or the file starts with a BOM), else
    Windows-1252 when it decodes as that. A later line that does not fit the encoding
    decided, or that is valid UTF-8 in a Windows-1252 file, is a mixed file: refused
    with its line number rather than read with some characters garbled."""

    def __init__(self, stream: BinaryIO) -> None:
        self._raw = _raw_lines(stream)
        self._pending: list[tuple[str, int]] = []
        self.line = 0
        """The number of lines read from the file."""
        self.encoding: str | None = None
        """None while every line read was plain ASCII."""
        self.blank_lines = 0
        """Blank lines skipped before the first text line: each is a row of the file."""
        self.row: int | None = None
        """The row being read; before the first, rows and lines are one (all blank)."""
        self._row_line = 1
        self._row_bytes = 0

    def begin_row(self, row: int) -> int:
        """Start counting the bytes of row ``row``; answers the line it starts on."""
        self.row = row
        self._row_line = self.line - len(self._pending) + 1
        self._row_bytes = 0
        return self._row_line

    def first_text_line(self) -> str | None:
        """The first line that is not blank, kept to be read again (the blank ones before
        it are counted in ``blank_lines``, not kept); None if the file has none."""
        while line := self._next_line():
            if line[0].strip():
                self._pending.append(line)
                return line[0]
            self.blank_lines += 1
        return None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self._pending.pop(0) if self._pending else self._next_line()
        if line is None:
            raise StopIteration
        text, size = line
        self._row_bytes += size
        if self._row_bytes > MAX_ROW_BYTES:
            raise self._error(
                ReadErrorCode.ROW_TOO_LONG,
                f'the row is longer than {MAX_ROW_BYTES // 1024} KiB: is a quote (") '
                "left unclosed?",
                line=self._row_line,
            )
        return text

    def _next_line(self) -> tuple[str, int] | None:
        raw = next(self._raw, None)
        if raw is None:
            return None
        self.line += 1
        if len(raw) > MAX_LINE_BYTES:
            raise self._error(
                ReadErrorCode.LINE_TOO_LONG, f"the line is longer than {MAX_LINE_BYTES // 1024} KiB"
            )
        return self._decode(raw), len(raw)

    def _decode(self, raw: bytes) -> str:
        if self.line == 1:
            if raw.startswith(_UTF16_BOMS):
                raise self._error(
                    ReadErrorCode.ENCODING,
                    'the file is UTF-16 text (Excel\'s "Unicode text"): save it as CSV UTF-8',
                )
            if raw.startswith(_UTF8_BOM):
                self.encoding = UTF8_BOM
                raw = raw[len(_UTF8_BOM) :]
        if b"\x00" in raw:
            raise self._error(
                ReadErrorCode.MALFORMED, "the line holds a NUL byte: this is not a text file"
            )
        if raw.isascii():
            return raw.decode("ascii")
        if self.encoding is None:
            self.encoding = UTF8 if _is_utf8(raw) else WINDOWS_1252
        if self.encoding == WINDOWS_1252:
            if _is_utf8(raw):
                raise self._mixed("UTF-8", "Windows-1252")
            try:
                return raw.decode(WINDOWS_1252)
            except UnicodeDecodeError:
                raise self._error(
                    ReadErrorCode.ENCODING,
                    "the line is neither UTF-8 nor Windows-1252 text: save the file as CSV UTF-8",
                ) from None
        try:
            return raw.decode(UTF8)
        except UnicodeDecodeError:
            raise self._mixed("not UTF-8", "UTF-8") from None

    def _mixed(self, found: str, earlier: str) -> FileReadError:
        return self._error(
            ReadErrorCode.ENCODING,
            f"the line is {found} but earlier lines are {earlier}: the file mixes "
            "encodings; save it again as CSV UTF-8",
        )

    def _error(self, code: ReadErrorCode, detail: str, *, line: int | None = None) -> FileReadError:
        return FileReadError(code, detail, row=self.row or self.line, line=line or self.line)


def detect_separator(line: str) -> str:
    """``;`` or ``,``, whichever the line has more of outside quotes: Dutch Excel writes
    ``;``, most other programs ``,``. On a tie ``;`` wins (a comma in a header of a
    ``;`` file is likelier than the reverse); with neither, ``,``."""
    outside = re.sub(r'"[^"]*"?', "", line)
    semicolons, commas = outside.count(";"), outside.count(",")
    if semicolons == commas == 0:
        return ","
    return ";" if semicolons >= commas else ","


def records(lines: Lines, separator: str) -> Iterator[Record]:
    """The rows of a CSV file, quotes and line breaks inside quotes as Excel writes them;
    a value is never converted (``=1+2`` and ``0612`` stay as written)."""
    if separator not in SEPARATORS:
        allowed = ", ".join(repr(choice) for choice in SEPARATORS)
        raise FileReadError(
            ReadErrorCode.MALFORMED, f"the separator must be one of {allowed}, not {separator!r}"
        )
    reader = csv.reader(lines, delimiter=separator, quotechar='"', strict=True)
    number = lines.blank_lines
    while True:
        start = lines.begin_row(number + 1)
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise _malformed(error, number + 1, start, lines.line) from None
        number += 1
        yield number, start, cells


def _malformed(error: csv.Error, row: int, start: int, line: int) -> FileReadError:
    message = str(error)
    if "unexpected end of data" in message:
        return FileReadError(
            ReadErrorCode.MALFORMED,
            'a quoted value is never closed (a " is missing)',
            row=row,
            line=start,
        )
    return FileReadError(
        ReadErrorCode.MALFORMED, f"the line is not valid CSV ({message})", row=row, line=line
    )
