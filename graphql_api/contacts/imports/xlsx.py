"""An XLSX workbook's sheet as rows, after checks that keep a hostile file from costing
more than its limits: it must be a zip whose declared contents stay under
``MAX_UNPACKED_BYTES`` and ``MAX_RATIO`` (a zip bomb is refused before anything is
unpacked), and the sheet read must hold no formulas and no DOCTYPE (the only way an XML
file can declare entities, and so the only way to an entity expansion bomb).

python-calamine reads a whole sheet into memory (about 150 MiB for 200,000 rows of 8
columns, a 92 MiB sheet unpacked): ``MAX_UNPACKED_BYTES`` is what bounds that memory."""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import BinaryIO
from xml.etree import ElementTree
from xml.parsers import expat

import python_calamine

from graphql_api.contacts.imports.csv_text import Record
from graphql_api.contacts.imports.errors import FileReadError, ReadErrorCode
from graphql_api.contacts.imports.values import cell_text

MAX_UNPACKED_BYTES = 64 * 1024 * 1024
"""The most an XLSX may unpack to, by the sizes its zip declares (all its parts)."""
MAX_RATIO = 200
"""The most a part larger than ``_RATIO_FROM_BYTES`` may be compressed; a spreadsheet's
XML compresses 5 to 50 times, a zip bomb thousands of times."""
MAX_PARTS = 10_000

_RATIO_FROM_BYTES = 1024 * 1024
_WORKBOOK_BYTES = 4 * 1024 * 1024
_SCAN_BYTES = 1024 * 1024
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_RELATIONS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_RELATION_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_CELL = f"{_MAIN[1:]}c"  # expat names an element "uri}name", with no "{" before it
_FORMULA = f"{_MAIN[1:]}f"
_CELL_REFERENCE = re.compile(r"([A-Z]{1,3})([0-9]+)")
_FORMULA_TAG = re.compile(rb"[<:]f[\s/>]")
"""The bytes that begin every start tag named ``f`` (``<f>``, ``<x:f ...>``) in UTF-8."""

_DAMAGED_ZIP = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    KeyError,  # a part the workbook names is missing
    EOFError,
    OSError,
    ValueError,  # a negative seek, a name that is not UTF-8
    RuntimeError,  # an encrypted part
    NotImplementedError,  # a compression method zipfile lacks
    OverflowError,
)
"""What zipfile raises, past its own BadZipFile, on a damaged archive (found by fuzzing)."""

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"


def _not_xlsx(detail: str) -> FileReadError:
    return FileReadError(ReadErrorCode.NOT_XLSX, detail)


def check_zip(archive: zipfile.ZipFile) -> None:
    """Refuses a zip that declares too much: too many parts, too many bytes unpacked, or
    one part compressed beyond ``MAX_RATIO`` (the sign of a zip bomb)."""
    parts = archive.infolist()
    if len(parts) > MAX_PARTS:
        raise FileReadError(
            ReadErrorCode.UNPACKS_TOO_LARGE, f"the XLSX holds more than {MAX_PARTS} parts"
        )
    if sum(part.file_size for part in parts) > MAX_UNPACKED_BYTES:
        raise FileReadError(
            ReadErrorCode.UNPACKS_TOO_LARGE,
            f"the XLSX unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB: split it, "
            "or save it as CSV",
        )
    for part in parts:
        if part.file_size > _RATIO_FROM_BYTES and part.file_size > MAX_RATIO * max(
            part.compress_size, 1
        ):
            raise FileReadError(
                ReadErrorCode.UNPACKS_TOO_LARGE,
                f"the XLSX part {part.filename} is compressed more than {MAX_RATIO} times: "
                "refused as a possible zip bomb",
            )


def _sheet_parts(archive: zipfile.ZipFile) -> dict[str, str]:
    """Each sheet's name and the zip part that holds it, as the workbook lists them."""
    try:
        workbook = _xml(archive, "xl/workbook.xml")
        relations = _xml(archive, "xl/_rels/workbook.xml.rels")
    except KeyError:
        raise _not_xlsx("the zip holds no workbook: is it an XLSX file?") from None
    links = relations.iter(f"{_RELATIONS}Relationship")
    targets = {link.get("Id"): link.get("Target", "") for link in links}
    parts = {}
    for sheet in workbook.iter(f"{_MAIN}sheet"):
        target = targets.get(sheet.get(_RELATION_ID), "")
        path = target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl", target))
        parts[sheet.get("name", "")] = path
    return parts


def _xml(archive: zipfile.ZipFile, name: str) -> ElementTree.Element:
    if archive.getinfo(name).file_size > _WORKBOOK_BYTES:
        raise FileReadError(ReadErrorCode.UNPACKS_TOO_LARGE, f"the XLSX part {name} is too large")
    try:
        return ElementTree.fromstring(archive.read(name))
    except ElementTree.ParseError:
        raise _not_xlsx(f"the XLSX part {name} is not valid XML") from None


def _refuse_formulas(archive: zipfile.ZipFile, part: str) -> None:
    """Refuses the sheet at its first formula cell: a formula in an upload is suspect (it
    would run in whoever opens an export of it), and its cached value may be stale.

    Two passes keep a sheet of values at the parser's own speed (0.7 s for 200,000 rows of
    8 columns, three times that with Python called at every element): the first only
    parses, and looks for the bytes every ``f`` tag begins with; only a sheet that has them
    is parsed again, element by element, to find the formula and its cell."""
    if _parse(archive, part, None):
        _parse(archive, part, _FormulaScan())


def _parse(archive: zipfile.ZipFile, part: str, scan: _FormulaScan | None) -> bool:
    """Parses the sheet as it unpacks, in chunks, building no tree, so memory stays flat;
    tells whether its bytes hold what may be a formula's tag. zipfile stops at the part's
    declared size and checks its checksum, so a part that lies about its size is refused.
    The sheet is read as UTF-8, as every XLSX program writes it, so that a formula cannot
    hide from the byte search in another encoding. A DOCTYPE is refused before it can
    declare an entity: a sheet never has one, and expat would expand an entity bomb."""
    parser = expat.ParserCreate("utf-8", namespace_separator="}")
    parser.StartDoctypeDeclHandler = _refuse_doctype
    if scan is not None:
        parser.StartElementHandler = scan.start
        parser.EndElementHandler = scan.end
    found, tail = False, b""
    try:
        with archive.open(part) as stream:
            chunk = stream.read(_SCAN_BYTES)
            if b"\0" in chunk[:4]:  # UTF-16 or UTF-32, which expat reads despite "utf-8"
                raise expat.ExpatError
            while chunk:
                parser.Parse(chunk, False)
                found = found or _FORMULA_TAG.search(tail + chunk) is not None
                tail = chunk[-2:]
                chunk = stream.read(_SCAN_BYTES)
        parser.Parse(b"", True)
    except expat.ExpatError:
        raise _not_xlsx(f"the XLSX part {part} is not valid XML in UTF-8") from None
    return found


def _refuse_doctype(*_: object) -> None:
    raise _not_xlsx("the sheet declares a DOCTYPE, which no spreadsheet program writes")


class _FormulaScan:
    """Raises at the first formula, naming the cell it is in."""

    def __init__(self) -> None:
        self.cell: str | None = None

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if name == _CELL:
            self.cell = attributes.get("r")
        elif name == _FORMULA:
            raise _formula(self.cell)

    def end(self, name: str) -> None:
        if name == _CELL:
            self.cell = None


def _formula(cell: str | None) -> FileReadError:
    """The error at a formula in ``cell``, the reference its ``r`` attribute gives (which
    a writer may leave out, or a hostile file get wrong)."""
    detail = "holds a formula; paste its values instead (Paste special, Values only)"
    reference = _CELL_REFERENCE.fullmatch(cell or "")
    if reference is None:
        return FileReadError(ReadErrorCode.FORMULA, f"an unknown cell {detail}")
    letters, row = reference.groups()
    return FileReadError(
        ReadErrorCode.FORMULA, f"cell {letters}{row} {detail}", row=int(row), column=letters
    )


def read_sheet(stream: BinaryIO, sheet: str | None) -> tuple[str, list[str], Iterator[Record]]:
    """The name of the sheet read (``sheet``, or the first), every sheet's name, and its
    rows, numbered as the spreadsheet numbers them."""
    try:
        with zipfile.ZipFile(stream) as archive:
            check_zip(archive)
            parts = _sheet_parts(archive)
            names = list(parts)
            if not names:
                raise _not_xlsx("the workbook has no sheets")
            name = names[0] if sheet is None else sheet
            if name not in parts:
                listed = ", ".join(f'"{n}"' for n in names)
                raise FileReadError(
                    ReadErrorCode.UNKNOWN_SHEET, f'there is no sheet "{name}" (there are {listed})'
                )
            _refuse_formulas(archive, parts[name])
    except _DAMAGED_ZIP:
        raise _not_xlsx("the file is not a readable XLSX (a damaged zip?)") from None
    stream.seek(0)
    try:
        workbook = python_calamine.CalamineWorkbook.from_filelike(stream)
        rows = workbook.get_sheet_by_name(name).iter_rows()
    except python_calamine.CalamineError:
        raise _not_xlsx("the file is not a readable XLSX") from None
    return name, names, _records(rows)


def _records(rows: Iterator[list[object]]) -> Iterator[Record]:
    """calamine answers rows from the sheet's first row on (row 1 is its first), but
    columns from the first one used: a table at C3 reads with its header as row 3."""
    for number, cells in enumerate(rows, start=1):
        yield number, number, [cell_text(cell) for cell in cells]
