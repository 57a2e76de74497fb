"""Reading an uploaded CSV or XLSX file into rows (graphql_api.contacts.imports): the
encodings, separators and sheets people's spreadsheets write, the values in their cells,
and every kind of bad file refused with a ``FileReadError`` that says where.

Files are made at test time: by Python's csv module and xlsxwriter, and by LibreOffice
(``soffice --headless --convert-to``) as a user's spreadsheet program writes them; the
LibreOffice tests skip without it, except in CI (``CI=true``), where they fail."""

from __future__ import annotations

import csv
import io
import os
import struct
import subprocess
import tracemalloc
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import xlsxwriter
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from xlsxwriter.worksheet import Worksheet

from graphql_api.contacts.imports.csv_text import MAX_LINE_BYTES, MAX_ROW_BYTES
from graphql_api.contacts.imports.errors import FileReadError, ReadErrorCode
from graphql_api.contacts.imports.reading import (
    SAMPLE_ROWS,
    FileKind,
    Source,
    detect,
    open_table,
)
from graphql_api.contacts.imports.values import InvalidValue, cell_text, parse_date
from graphql_api.contacts.imports.xlsx import _SCAN_BYTES as SCAN_BYTES
from graphql_api.contacts.imports.xlsx import MAX_RATIO, MAX_UNPACKED_BYTES
from graphql_api.testing import cli, debian_program

MAX_BYTES = 100 * 2**20


def read(source: Source, **options: object) -> tuple[tuple[str, ...], list[list[str]]]:
    """The columns and every row's values of ``source``."""
    with open_table(source, max_bytes=MAX_BYTES, **options) as table:
        return table.columns, [list(row.values.values()) for row in table.rows]


def refusal(source: Source, **options: object) -> FileReadError:
    """The error reading all of ``source`` raises."""
    with pytest.raises(FileReadError) as raised:
        read(source, **options)
    return raised.value


def peak_bytes(work: Callable[[], object]) -> int:
    """The most memory Python allocated while ``work`` ran."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# CSV: encodings, separators, lines


def test_a_dutch_excel_file_reads_with_semicolons_quotes_and_line_breaks() -> None:
    data = 'Naam;Adres;Telefoon\r\nJan;"Dorpsstraat 1;\r\nAmsterdam";0612345678\r\n'
    with open_table(data.encode(), max_bytes=MAX_BYTES) as table:
        assert (table.kind, table.separator, table.columns) == (
            FileKind.CSV,
            ";",
            ("Naam", "Adres", "Telefoon"),
        )
        [row] = table.rows
    assert (row.number, row.line) == (2, 2)
    assert row.values == {
        "Naam": "Jan",
        "Adres": "Dorpsstraat 1;\r\nAmsterdam",
        "Telefoon": "0612345678",
    }


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("Naam,Plaats\nJosé,Zürich\n".encode(), "utf-8"),
        ("\ufeffNaam,Plaats\nJosé,Zürich\n".encode(), "utf-8-sig"),
        ("Naam,Plaats\nJosé,Zürich\n".encode("cp1252"), "windows-1252"),
    ],
)
def test_utf8_with_or_without_bom_and_windows_1252_are_detected(data: bytes, encoding: str) -> None:
    with open_table(data, max_bytes=MAX_BYTES) as table:
        assert table.columns == ("Naam", "Plaats")
        assert [row.values for row in table.rows] == [{"Naam": "José", "Plaats": "Zürich"}]
        assert table.encoding == encoding


@pytest.mark.parametrize(
    ("data", "line", "found"),
    [
        ("a\nJosé\n".encode("cp1252") + "Zoë\n".encode(), 3, "is UTF-8 but earlier"),
        ("a\nJosé\n".encode() + "Zoë\n".encode("cp1252"), 3, "is not UTF-8 but earlier"),
        (b"a\nb\n\x81\n", 3, "neither UTF-8 nor Windows-1252"),
    ],
)
def test_a_file_mixing_encodings_is_refused_at_its_line(data: bytes, line: int, found: str) -> None:
    error = refusal(data)
    assert (error.code, error.line) == (ReadErrorCode.ENCODING, line)
    assert found in error.message
    assert error.message.startswith(f"Row {line}:")


def test_utf16_is_refused_with_what_to_do() -> None:
    error = refusal("Naam\tPlaats\r\nJan\tEde\r\n".encode("utf-16"))
    assert error.code == ReadErrorCode.ENCODING
    assert "save it as CSV UTF-8" in error.message


@pytest.mark.parametrize(
    ("header", "separator"),
    [("a,b,c", ","), ("a;b;c", ";"), ("a;b,c", ";"), ('"x;y",b,c', ","), ("alleen", ",")],
)
def test_the_separator_is_detected_from_the_header_line(header: str, separator: str) -> None:
    with open_table(f"{header}\n1\n".encode(), max_bytes=MAX_BYTES) as table:
        assert table.separator == separator


def test_the_separator_can_be_overridden() -> None:
    assert read(b"a,b;c\n1,2;3\n", separator=",") == (("a", "b;c"), [["1", "2;3"]])
    assert read(b"a;b\tc\n1;2\t3\n", separator="\t") == (("a;b", "c"), [["1;2", "3"]])


def test_a_separator_that_is_not_one_of_the_choices_is_refused() -> None:
    error = refusal(b"a;b\n1;2\n", separator=";;")
    assert (error.code, error.row, error.line) == (ReadErrorCode.MALFORMED, None, None)
    assert error.message == "the separator must be one of ',', ';', '\\t', '|', not ';;'"


def test_old_mac_line_endings_and_a_missing_last_line_break() -> None:
    assert read(b"a;b\r1;2\r3;4") == (("a", "b"), [["1", "2"], ["3", "4"]])


def test_csv_values_stay_text_as_written() -> None:
    _, rows = read(b"postcode;telefoon;formule\n0123;0612345678;=1+2\n")
    assert rows == [["0123", "0612345678", "=1+2"]]


# CSV: headers and row shapes


@pytest.mark.parametrize("data", [b"", b"  \r\n\n", b"\xef\xbb\xbf", b";;;\n;;\n"])
def test_an_empty_file_is_refused(data: bytes) -> None:
    error = refusal(data)
    assert (error.code, error.message) == (ReadErrorCode.EMPTY, "the file is empty")


def test_a_header_without_rows_is_refused_at_detection_already() -> None:
    with pytest.raises(FileReadError) as raised:
        detect(b"Naam;Plaats\r\n;\r\n", max_bytes=MAX_BYTES)
    assert raised.value.code == ReadErrorCode.NO_ROWS
    assert raised.value.message == "Row 2: the file has a header but no rows under it"


def test_a_repeated_header_is_numbered_ignoring_case_and_said() -> None:
    found = detect(b"Naam;Plaats;naam ;NAAM (2)\n1;2;3;4\n", max_bytes=MAX_BYTES)
    assert found.columns == ("Naam", "Plaats", "naam (2)", "NAAM (2) (2)")
    assert found.warnings == (
        'Columns 1 and 3 are both named "naam": column 3 is read as "naam (2)".',
        'Columns 3 and 4 are both named "NAAM (2)": column 4 is read as "NAAM (2) (2)".',
    )
    assert found.samples[0].values == {
        "Naam": "1",
        "Plaats": "2",
        "naam (2)": "3",
        "NAAM (2) (2)": "4",
    }


def test_an_empty_header_between_others_is_refused() -> None:
    error = refusal(b"Naam;;Plaats\n1;2;3\n")
    assert error.code == ReadErrorCode.EMPTY_HEADER
    assert error.message == "Row 1: column 2 has no name in the header; name it or remove it"


def test_empty_trailing_headers_and_values_are_dropped() -> None:
    assert read(b"Naam;Plaats;;\nJan;Ede;;\nPiet;Epe\n") == (
        ("Naam", "Plaats"),
        [["Jan", "Ede"], ["Piet", "Epe"]],
    )


def test_unknown_headers_are_exposed_as_they_are() -> None:
    columns, _ = read(b" Voornaam ;Lievelingskleur\nJan;rood\n")
    assert columns == ("Voornaam", "Lievelingskleur")


def test_blank_rows_are_skipped_and_row_numbers_stay_those_of_the_file() -> None:
    with open_table(b"\n \r\na;b\n\n;\n1;2\n\n3;4\n", max_bytes=MAX_BYTES) as table:
        assert table.separator == ";"
        assert [(row.number, row.values["a"]) for row in table.rows] == [(6, "1"), (8, "3")]
    assert refusal(b"\n\na;b\n\n").message == "Row 4: the file has a header but no rows under it"


def test_a_short_row_is_refused_with_its_row_and_line() -> None:
    error = refusal(b'a;b\n"x\ny";2\n3\n')
    assert (error.code, error.row, error.line) == (ReadErrorCode.ROW_LENGTH, 3, 4)
    assert error.message == "Row 3 (line 4): the row has 1 of the header's 2 columns"


def test_a_value_beyond_the_last_column_is_refused() -> None:
    error = refusal(b"a;b\n1;2;;\n1;2;;x\n")
    assert (error.code, error.row) == (ReadErrorCode.ROW_LENGTH, 3)
    assert 'a value ("x") in column 4' in error.message


def test_an_unclosed_quote_at_the_end_is_refused_where_it_starts() -> None:
    error = refusal(b'a;b\n1;2\n3;"4\n5;6\n')
    assert (error.code, error.row, error.line) == (ReadErrorCode.MALFORMED, 3, 3)
    assert "never closed" in error.message


def test_an_unclosed_quote_swallowing_the_file_stops_at_the_row_limit() -> None:
    data = b'a;b\n1;"2\n' + b"3;4\n" * (MAX_ROW_BYTES // 4)
    error = refusal(data)
    assert (error.code, error.row, error.line) == (ReadErrorCode.ROW_TOO_LONG, 2, 2)


def test_text_after_a_closing_quote_is_refused() -> None:
    error = refusal(b'a;b\n1;"2"x\n')
    assert (error.code, error.row) == (ReadErrorCode.MALFORMED, 2)
    assert error.message.startswith("Row 2: the line is not valid CSV")


def test_a_nul_byte_is_refused() -> None:
    error = refusal(b"a;b\n1;\x002\n")
    assert (error.code, error.row) == (ReadErrorCode.MALFORMED, 2)
    assert "not a text file" in error.message


def test_a_50_mb_line_is_refused_without_reading_it_into_memory(tmp_path: Path) -> None:
    path = tmp_path / "lang.csv"
    with path.open("wb") as file:
        file.write(b"a;b\n1;")
        for _ in range(50):
            file.write(b"x" * 2**20)
    errors: list[FileReadError] = []

    def reading() -> None:
        errors.append(refusal(path))

    assert peak_bytes(reading) < 8 * MAX_LINE_BYTES  # a chunk past the limit, and copies
    assert (errors[0].code, errors[0].row) == (ReadErrorCode.LINE_TOO_LONG, 2)
    assert errors[0].message == "Row 2: the line is longer than 64 KiB"


def test_a_large_csv_is_read_in_constant_memory(tmp_path: Path) -> None:
    path = tmp_path / "groot.csv"
    line = "Jan;de Vries;Dorpsstraat 1;1234 AB;Amsterdam;jan@example.org;0612345678\n"
    with path.open("w", encoding="utf-8") as file:
        file.write("a;b;c;d;e;f;g\n")
        for _ in range(40_000):  # 3 MB, read whole it would be over 1 MiB
            file.write(line)
    counted: list[int] = []

    def reading() -> None:
        with open_table(path, max_bytes=MAX_BYTES) as table:
            counted.append(sum(1 for _ in table.rows))

    assert peak_bytes(reading) < 1024 * 1024
    assert counted == [40_000]


@pytest.mark.parametrize("as_source", [bytes, Path, io.BytesIO])
def test_a_file_over_max_bytes_is_refused_before_reading(
    as_source: Callable[..., Source], tmp_path: Path
) -> None:
    data = b"a;b\n" + b"1;2\n" * 300
    if as_source is Path:
        (tmp_path / "f.csv").write_bytes(data)
        source: Source = tmp_path / "f.csv"
    else:
        source = as_source(data)
    with pytest.raises(FileReadError) as raised:
        detect(source, max_bytes=1000)
    assert raised.value.code == ReadErrorCode.TOO_LARGE
    assert raised.value.message == "the file is 1204 bytes, more than the 1000 bytes allowed"


def test_detection_shows_the_columns_and_the_first_rows() -> None:
    data = "\ufeffNaam;Plaats\n" + "".join(f"Naam {n};Ede\n" for n in range(10))
    found = detect(io.BytesIO(data.encode()), max_bytes=MAX_BYTES)
    assert (found.kind, found.columns, found.separator, found.encoding) == (
        FileKind.CSV,
        ("Naam", "Plaats"),
        ";",
        "utf-8-sig",
    )
    assert [row.values["Naam"] for row in found.samples] == [
        f"Naam {n}" for n in range(SAMPLE_ROWS)
    ]
    assert [row.number for row in found.samples] == [2, 3, 4, 5, 6]


# XLSX


def workbook(
    path: Path, sheets: dict[str, Callable[[xlsxwriter.Workbook, Worksheet], None]]
) -> Path:
    """An XLSX at ``path`` with a sheet per name, each filled by its function."""
    book = xlsxwriter.Workbook(str(path))
    for name, fill in sheets.items():
        fill(book, book.add_worksheet(name))
    book.close()
    return path


def contacts_sheet(book: xlsxwriter.Workbook, sheet: Worksheet) -> None:
    """A table starting at C3: text, numbers, dates, a date with a time, a boolean."""
    dates = book.add_format({"num_format": "dd-mm-yyyy"})
    sheet.write_row("C3", ["Naam", "Postcode", "Telefoon", "Geboren", "Afspraak", "Actief", "Maat"])
    sheet.write_row("C4", ["Jan", 1234, "0612345678"])
    sheet.write_datetime("F4", datetime(1980, 12, 31), dates)
    sheet.write_datetime("G4", datetime(2025, 1, 2, 10, 30), dates)
    sheet.write_row("H4", [True, 1.5])


def formula_sheet(book: xlsxwriter.Workbook, sheet: Worksheet) -> None:
    sheet.write_row("A1", ["Naam", "Som"])
    sheet.write_row("A2", ["Jan", 1])
    sheet.write_formula("B3", "=B2+1", None, 2)
    sheet.write("A3", "Piet")


def test_an_xlsx_sheet_reads_as_text_with_dates_in_iso_form(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", {"Contacten": contacts_sheet, "Som": formula_sheet})
    with open_table(path, max_bytes=MAX_BYTES) as table:
        assert (table.kind, table.sheet, table.sheets, table.encoding) == (
            FileKind.XLSX,
            "Contacten",
            ("Contacten", "Som"),
            None,
        )
        [row] = table.rows
    assert row.number == 4
    assert row.values == {
        "Naam": "Jan",
        "Postcode": "1234",
        "Telefoon": "0612345678",
        "Geboren": "1980-12-31",
        "Afspraak": "2025-01-02 10:30:00",
        "Actief": "TRUE",
        "Maat": "1.5",
    }


def test_a_formula_in_the_sheet_read_is_refused_at_its_cell(tmp_path: Path) -> None:
    path = workbook(tmp_path / "f.xlsx", {"Contacten": contacts_sheet, "Som": formula_sheet})
    error = refusal(path, sheet="Som")
    assert (error.code, error.row, error.column) == (ReadErrorCode.FORMULA, 3, "B")
    assert error.message.startswith('Row 3, column "B": cell B3 holds a formula')


MAIN = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"
FORMULA_CELL = b'<c r="B3"><f>B2+1</f><v>2</v></c>'
"""The formula cell of ``formula_sheet`` as xlsxwriter writes it."""


def with_sheet(edit: Callable[[bytes], bytes], part: str = "xl/worksheets/sheet2.xml") -> bytes:
    """``SMALL_WORKBOOK`` with the XML of one sheet (``Som``, unless told) rewritten."""
    parts = small_workbook_parts()
    edited = edit(parts[part])
    assert edited != parts[part]
    return zip_of(parts | {part: edited})


def small_workbook_parts() -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(SMALL_WORKBOOK)) as real:
        return {name: real.read(name) for name in real.namelist()}


@pytest.mark.parametrize(
    ("cell", "row", "column"),
    [
        (b"<c r='B3'><f>B2+1</f><v>2</v></c>", 3, "B"),
        (b"<c><f>B2+1</f><v>2</v></c>", None, None),
        (b'<x:c r="B3"><x:f>B2+1</x:f><x:v>2</x:v></x:c>', 3, "B"),
        (b'<c r="B3"><f t="shared" si="0"/><v>2</v></c>', 3, "B"),
    ],
    ids=["single-quoted", "no-reference", "prefixed", "shared"],
)
def test_a_formula_is_refused_however_its_cell_is_written(
    cell: bytes, row: int | None, column: str | None
) -> None:
    def edit(sheet: bytes) -> bytes:
        prefixed = sheet.replace(b'xmlns="%s"' % MAIN, b'xmlns="%s" xmlns:x="%s"' % (MAIN, MAIN))
        return prefixed.replace(FORMULA_CELL, cell)

    error = refusal(with_sheet(edit), sheet="Som")
    assert (error.code, error.row, error.column) == (ReadErrorCode.FORMULA, row, column)
    where = "cell B3" if row else "an unknown cell"
    assert error.message.endswith(
        f"{where} holds a formula; paste its values instead (Paste special, Values only)"
    )


@pytest.mark.parametrize(
    ("cell", "at"),
    [
        (FORMULA_CELL, SCAN_BYTES - 1 - len(b'<c r="B3">')),
        (b'<c r="B3"' + b" " * 6000 + b"><f>B2+1</f><v>2</v></c>", SCAN_BYTES - 5000),
    ],
    ids=["tag-split", "cell-split"],
)
def test_a_formula_across_two_reads_of_the_sheet_is_refused(cell: bytes, at: int) -> None:
    """The sheet is searched a chunk at a time: a formula cell whose ``<f>`` starts on the
    last byte of one, or whose padded start tag spans thousands of bytes into the next."""

    def edit(sheet: bytes) -> bytes:
        start = sheet.index(FORMULA_CELL)
        filler = at - start - len(b"<!---->")
        # random text, so that the part does not compress like a zip bomb
        padded = sheet[:start] + b"<!--" + os.urandom(filler).hex()[:filler].encode() + b"-->"
        padded += cell + sheet[start + len(FORMULA_CELL) :]
        assert padded.index(b'<c r="B3"') == at
        assert padded.index(b"<f>") >= SCAN_BYTES - 1
        return padded

    error = refusal(with_sheet(edit), sheet="Som")
    assert (error.code, error.row, error.column) == (ReadErrorCode.FORMULA, 3, "B")


def test_formulas_in_other_namespaces_and_text_like_a_formula_tag_are_read() -> None:
    """A list validation (Excel 2010 and later) holds a formula of its own, in another
    namespace: the sheet reads, as does a cell whose text looks like a tag."""
    validation = (
        b'<extLst><ext uri="{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}" '
        b'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
        b'<x14:dataValidations count="1" '
        b'xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main">'
        b'<x14:dataValidation type="list"><x14:formula1><xm:f>Som!$A$2:$A$3</xm:f>'
        b"</x14:formula1><xm:sqref>C4</xm:sqref></x14:dataValidation></x14:dataValidations>"
        b"</ext></extLst></worksheet>"
    )
    text = b'<row r="5"><c r="C5" t="inlineStr"><is><t>&lt;f&gt; a:f b</t></is></c></row>'

    def edit(sheet: bytes) -> bytes:
        with_text = sheet.replace(b"</sheetData>", text + b"</sheetData>")
        return with_text.replace(b"</worksheet>", validation)

    columns, rows = read(with_sheet(edit, "xl/worksheets/sheet1.xml"))
    assert columns[:2] == ("Naam", "Postcode")
    assert [row[:2] for row in rows] == [["Jan", "1234"], ["<f> a:f b", ""]]


BOMB = b"".join(
    [b'<!DOCTYPE worksheet [<!ENTITY e0 "lol">']
    + [b'<!ENTITY e%d "%s">' % (n, b"&e%d;" % (n - 1) * 10) for n in range(1, 10)]
    + [b"]>"]
)


@pytest.mark.parametrize(
    "doctype",
    [BOMB, b'<!DOCTYPE worksheet [<!ENTITY e9 SYSTEM "file:///etc/passwd">]>'],
    ids=["billion-laughs", "external"],
)
def test_a_sheet_declaring_entities_is_refused_before_expanding_them(doctype: bytes) -> None:
    def edit(sheet: bytes) -> bytes:
        declared = sheet.replace(b"?>", b"?>" + doctype, 1)
        return declared.replace(FORMULA_CELL, b'<c r="B3" t="inlineStr"><is><t>&e9;</t></is></c>')

    data = with_sheet(edit)
    error = refusal(data, sheet="Som")
    assert error.code == ReadErrorCode.NOT_XLSX
    assert error.message == "the sheet declares a DOCTYPE, which no spreadsheet program writes"
    assert peak_bytes(lambda: refusal(data, sheet="Som")) < 4 * 2**20


def test_a_sheet_in_utf16_is_refused() -> None:
    """Every spreadsheet program writes UTF-8; in UTF-16 a formula would not show in the
    bytes the sheet is searched for."""

    def edit(sheet: bytes) -> bytes:
        return sheet.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")

    error = refusal(with_sheet(edit), sheet="Som")
    assert error.code == ReadErrorCode.NOT_XLSX
    assert error.message == "the XLSX part xl/worksheets/sheet2.xml is not valid XML in UTF-8"


def test_sheets_named_by_absolute_paths_are_found() -> None:
    """Some programs name a workbook's sheets from the zip's root (``/xl/...``)."""
    relations = "xl/_rels/workbook.xml.rels"
    parts = small_workbook_parts()
    absolute = parts[relations].replace(b'Target="worksheets/', b'Target="/xl/worksheets/')
    assert absolute != parts[relations]
    data = zip_of(parts | {relations: absolute})
    assert read(data)[1][0][:2] == ["Jan", "1234"]
    assert refusal(data, sheet="Som").code == ReadErrorCode.FORMULA


def test_an_unknown_sheet_is_refused_naming_the_sheets(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", {"Contacten": contacts_sheet, "Som": formula_sheet})
    error = refusal(path, sheet="Leden")
    assert error.code == ReadErrorCode.UNKNOWN_SHEET
    assert error.message == 'there is no sheet "Leden" (there are "Contacten", "Som")'


def test_an_empty_sheet_is_refused(tmp_path: Path) -> None:
    path = workbook(tmp_path / "e.xlsx", {"Leeg": lambda book, sheet: None})
    error = refusal(path)
    assert (error.code, error.message) == (ReadErrorCode.EMPTY, 'the sheet "Leeg" is empty')


def zip_of(parts: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_xlsx_files_that_are_not_are_refused(tmp_path: Path) -> None:
    real = workbook(tmp_path / "c.xlsx", {"Contacten": contacts_sheet}).read_bytes()
    for data, kind, code in [
        (b"Naam;Plaats\n", FileKind.XLSX, ReadErrorCode.NOT_XLSX),
        (zip_of({"leesmij.txt": b"hallo"}), None, ReadErrorCode.NOT_XLSX),
        (real[: len(real) // 2], None, ReadErrorCode.NOT_XLSX),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), None, ReadErrorCode.UNSUPPORTED),
    ]:
        assert refusal(data, kind=kind).code == code


def test_a_zip_bomb_is_refused_before_it_is_unpacked() -> None:
    bomb = zip_of({"xl/worksheets/sheet1.xml": bytes(4 * 2**20)})
    error = refusal(bomb)
    assert error.code == ReadErrorCode.UNPACKS_TOO_LARGE
    assert f"compressed more than {MAX_RATIO} times" in error.message


def test_an_xlsx_unpacking_beyond_the_limit_is_refused() -> None:
    parts = {f"xl/media/image{n}.bin": bytes(2**20) for n in range(MAX_UNPACKED_BYTES >> 20)}
    error = refusal(zip_of(parts | {"xl/workbook.xml": b"<workbook/>"}))
    assert error.code == ReadErrorCode.UNPACKS_TOO_LARGE
    assert error.message.startswith(f"the XLSX unpacks to more than {MAX_UNPACKED_BYTES >> 20}")


def test_an_xlsx_part_larger_than_it_declares_is_refused() -> None:
    """The sheet's zip entries declare its first bytes only (their size and checksum), so
    every size check passes; unpacking must still stop there rather than trust the data."""
    head = (
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Naam</t></is></c></row>'
    )
    rows = b"".join(
        b'<row r="%d"><c r="A%d" t="inlineStr"><is><t>x</t></is></c></row>' % (n, n)
        for n in range(2, 20_000)
    )
    sheet = "xl/worksheets/sheet1.xml"
    parts = small_workbook_parts()
    data = bytearray(zip_of(parts | {sheet: head + rows + b"</sheetData></worksheet>"}))
    local = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo(sheet).header_offset
    central = data.rindex(sheet.encode()) - 46
    for crc_at, size_at in [(local + 14, local + 22), (central + 16, central + 24)]:
        struct.pack_into("<I", data, crc_at, zlib.crc32(head))
        struct.pack_into("<I", data, size_at, len(head))
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).read(sheet) == head
    assert refusal(bytes(data)).code == ReadErrorCode.NOT_XLSX


# Values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("31-12-2025", date(2025, 12, 31)),
        ("1-2-2025", date(2025, 2, 1)),
        (" 31/12/2025 ", date(2025, 12, 31)),
        ("31.12.2025", date(2025, 12, 31)),
        ("2025-12-31", date(2025, 12, 31)),
        ("", None),
    ],
)
def test_dates_are_read_in_dutch_and_iso_order(text: str, expected: date | None) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("31-12-25", '"31-12-25" has a two-digit year: write it as dd-mm-yyyy'),
        ("12/31/2025", '"12/31/2025" is not a date in the calendar'),
        ("2025-02-30", '"2025-02-30" is not a date in the calendar'),
        ("morgen", '"morgen" is not a date (write dd-mm-yyyy or yyyy-mm-dd)'),
        ("2025-12-31 10:30:00", '"2025-12-31 10:30:00" is not a date'),
    ],
)
def test_what_is_not_a_date_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        parse_date(text)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (612345678.0, "612345678"),
        (31612345678.0, "31612345678"),
        (-3.0, "-3"),
        (0.1, "0.1"),
        (float("nan"), ""),
        (False, "FALSE"),
        (date(2025, 1, 2), "2025-01-02"),
        ("0612", "0612"),
    ],
)
def test_xlsx_cells_become_the_text_they_show(value: object, text: str) -> None:
    assert cell_text(value) == text


# Properties

CSV_PIECES = [b",", b";", b'"', b"\n", b"\r", b"a", b" ", b"\xc3\xa9", b"\xe9", b"\x81", b"\x00"]
CSV_PIECES += [b"\xef\xbb\xbf", b"\xff\xfe", b"PK\x03\x04", b"\xd0\xcf\x11\xe0"]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=3000),
        st.lists(st.sampled_from(CSV_PIECES), max_size=400).map(b"".join),
    )
)
def test_any_bytes_read_as_rows_or_a_file_read_error(data: bytes) -> None:
    """The fuzzer sends arbitrary bytes, and strings of CSV's hard parts (separators,
    quotes, line endings, UTF-8 and Windows-1252 letters, a byte neither has, NUL, BOMs,
    and the magic numbers of a zip and an old .xls). Reading must give rows or raise a
    ``FileReadError``, never another exception, within Hypothesis' deadline (no hang)."""
    try:
        columns, rows = read(data)
    except FileReadError as error:
        assert error.problems[0].message
    else:
        assert columns and all(name.strip() == name for name in columns)
        assert all(len(row) == len(columns) for row in rows)


def small_workbook() -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    contacts_sheet(book, book.add_worksheet("Contacten"))
    formula_sheet(book, book.add_worksheet("Som"))
    book.close()
    return buffer.getvalue()


SMALL_WORKBOOK = small_workbook()


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(SMALL_WORKBOOK) - 1), st.integers(0, 40), st.binary()),
        min_size=1,
        max_size=6,
    )
)
def test_any_damaged_xlsx_reads_as_rows_or_a_file_read_error(
    edits: list[tuple[int, int, bytes]],
) -> None:
    """The fuzzer damages a real XLSX: at a few places it replaces up to 40 bytes with
    any bytes (its zip headers, its compressed XML, its directory). Reading must give rows
    or raise a ``FileReadError``: zipfile's and calamine's own errors are never let out."""
    data = SMALL_WORKBOOK
    for at, length, replacement in edits:
        data = data[:at] + replacement + data[at + length :]
    try:
        read(data)
    except FileReadError as error:
        assert error.problems[0].message


HEADER_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.()éëïöü"
CP1252_LETTERS = "abcxyzABCXYZ0129 ,;\"'\r\n=àáâäçèéêëìíîïñòóôöùúûüÀÉÈËÏÖÜß"


@st.composite
def written_files(draw: st.DrawFn) -> tuple[bytes, list[str], list[list[str]]]:
    """A CSV written by Python's csv module: a header of 2 to 5 distinct names, rows of
    any text (quotes, both separators, line breaks, non-Latin letters), either separator,
    minimal or full quoting, ``\\r\\n`` or ``\\n``; UTF-8 with or without BOM, or
    Windows-1252 with the letters Dutch text uses (whose bytes never form UTF-8)."""
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]))
    letters = (
        st.sampled_from(CP1252_LETTERS)
        if encoding == "cp1252"
        else st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
    )
    header = draw(
        st.lists(
            st.text(HEADER_LETTERS, min_size=1, max_size=8).map(str.strip).filter(bool),
            min_size=2,
            max_size=5,
            unique_by=str.casefold,
        )
    )
    row = st.lists(st.text(letters, max_size=12), min_size=len(header), max_size=len(header))
    rows = draw(st.lists(row, min_size=1, max_size=8))
    separator = draw(st.sampled_from([",", ";"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    ending = draw(st.sampled_from(["\r\n", "\n"]))
    if quoting == csv.QUOTE_MINIMAL and ending == "\n":
        assume(not any("\r" in value for values in rows for value in values))  # left unquoted
    text = io.StringIO()
    csv.writer(text, delimiter=separator, quoting=quoting, lineterminator=ending).writerows(
        [header, *rows]
    )
    return text.getvalue().encode(encoding), header, rows


@given(written_files())
def test_rows_written_with_csv_read_back_equal(
    written: tuple[bytes, list[str], list[list[str]]],
) -> None:
    """See ``written_files`` for what is generated; rows of blanks only are skipped."""
    data, header, rows = written
    expected = [values for values in rows if any(value.strip() for value in values)]
    if not expected:
        assert refusal(data).code == ReadErrorCode.NO_ROWS
        return
    assert read(data) == (tuple(header), expected)


# Files written by LibreOffice

LIBREOFFICE_SOURCE = (
    "Naam,Postcode,Telefoon,Geboortedatum,Opmerking\n"
    'José Müller,1234 AB,0612345678,31-12-1980,"zegt ""hoi""; en, ja"\n'
    "Zoë €uro,0123,0201234567,01-02-2003,=1+2\n"
)
LIBREOFFICE_ROWS = [
    ["José Müller", "1234 AB", "0612345678", "31-12-1980", 'zegt "hoi"; en, ja'],
    ["Zoë €uro", "0123", "0201234567", "01-02-2003", "=1+2"],
]


@pytest.fixture(scope="module")
def libreoffice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Path]]:
    """Converts ``LIBREOFFICE_SOURCE`` with soffice: column formats 2 (text) keep postal
    codes, phones and ``=1+2`` as written; format 4 makes the birth dates date cells, 1
    (standard) with formulas evaluated makes ``=1+2`` a formula."""
    soffice = debian_program("soffice", "libreoffice-calc-nogui")
    root = tmp_path_factory.mktemp("libreoffice")
    source = root / "contacten.csv"
    source.write_text(LIBREOFFICE_SOURCE, encoding="utf-8")
    profile = (root / "profile").as_uri()  # a profile of its own: runs can be parallel

    def convert(to: str, formats: str = "1/2/2/2/3/2/4/2/5/2", formulas: bool = False) -> Path:
        out = root / uuid.uuid4().hex
        infilter = f"CSV:44,34,76,1,{formats}" + (
            ",1033,false,false,false,false,false,false,true" if formulas else ""
        )
        command = [soffice, f"-env:UserInstallation={profile}", "--headless"]
        command += [f"--infilter={infilter}", "--convert-to", to, "--outdir", str(out)]
        subprocess.run(
            [*command, str(source)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        [written] = out.iterdir()
        return written

    yield convert


def test_libreoffice_csv_utf8_with_semicolons(libreoffice: Callable[..., Path]) -> None:
    path = libreoffice("csv:Text - txt - csv (StarCalc):59,34,76")
    assert b";" in path.read_bytes().splitlines()[0]
    with open_table(path, max_bytes=MAX_BYTES) as table:
        assert table.separator == ";"
        assert [list(row.values.values()) for row in table.rows] == LIBREOFFICE_ROWS
        assert table.encoding == "utf-8"


def test_libreoffice_csv_utf8_with_commas(libreoffice: Callable[..., Path]) -> None:
    path = libreoffice("csv:Text - txt - csv (StarCalc):44,34,76")
    assert read(path)[1] == LIBREOFFICE_ROWS


def test_libreoffice_csv_windows_1252(libreoffice: Callable[..., Path]) -> None:
    path = libreoffice("csv:Text - txt - csv (StarCalc):59,34,1")
    assert "€".encode("cp1252") in path.read_bytes()
    with open_table(path, max_bytes=MAX_BYTES) as table:
        assert [list(row.values.values()) for row in table.rows] == LIBREOFFICE_ROWS
        assert table.encoding == "windows-1252"


def test_libreoffice_xlsx_with_text_and_date_cells(libreoffice: Callable[..., Path]) -> None:
    path = libreoffice("xlsx", formats="1/2/2/2/3/2/4/4/5/2")
    columns, rows = read(path)
    assert columns == ("Naam", "Postcode", "Telefoon", "Geboortedatum", "Opmerking")
    assert [row[3] for row in rows] == ["1980-12-31", "2003-02-01"]
    assert [parse_date(row[3]) for row in rows] == [date(1980, 12, 31), date(2003, 2, 1)]
    assert [row[:3] + row[4:] for row in rows] == [row[:3] + row[4:] for row in LIBREOFFICE_ROWS]


def test_libreoffice_xlsx_with_a_formula(libreoffice: Callable[..., Path]) -> None:
    path = libreoffice("xlsx", formats="1/2/2/2/3/2/4/2/5/1", formulas=True)
    error = refusal(path)
    assert (error.code, error.row, error.column) == (ReadErrorCode.FORMULA, 3, "E")


# An Econobis contact export

ECONOBIS_CONTACT_COLUMNS = [
    "#", "Naam", "Organisatie", "Website", "Kvk", "Btw nummer", "Aanspreektitel",
    "Initialen", "Voornaam", "Tussenvoegsel", "Achternaam", "Geboortedatum", "IBAN",
    "IBAN tnv", "Akkoord privacybeleid", "Datum akkoord privacybeleid", "Incasso",
    "Machtingskenmerk", "Datum van ondertekening", "Datum eerste incassoronde",
    "Voornaam partner", "Achternaam partner", "Geboortedatum partner", "Bezorg adres",
    "Bezorg huisnummer", "Bezorg toevoeging", "Bezorg postcode", "Bezorg plaats",
    "Bezorg land", "Bezoek adres", "Bezoek huisnummer", "Bezoek toevoeging",
    "Bezoek postcode", "Bezoek plaats", "Bezoek land", "Post adres", "Post huisnummer",
    "Post toevoeging", "Post postcode", "Post plaats", "Post land", "Nota adres",
    "Nota huisnummer", "Nota toevoeging", "Nota postcode", "Nota plaats", "Nota land",
    "Email primair", "Email 2", "Email 3", "Email 4", "Email 5", "Telefoonnummer primair",
    "Telefoonnummer 2", "Telefoonnummer 3", "Energieleverancier (elektra)",
    "Klantnummer (elektra)", "Klant sinds (elektra)", "EAN electriciteit",
    "Energieleverancier (gas)", "Klantnummer (gas)", "Klant sinds (gas)", "EAN gas",
    "Opmerkingen", "Datum gemaakt op", "Datum laatste update",
]  # fmt: skip
ECONOBIS_OCCUPATION_COLUMNS = [
    "Primair", "Boven of onder", "Begindatum", "Einddatum", "Aanspreektitel",
    "Volledige naam", "Initialen", "Voornaam", "Tussenvoegsel", "Achternaam",
    "Geboortedatum", "Primair e-mailadres", "Primair telefoonnummer", "Rol van contact",
]  # fmt: skip


def econobis_export(columns: list[str]) -> bytes:
    """A file as Econobis writes it: a UTF-8 BOM, ``;``, dates as d-m-Y."""
    values = {
        "#": "C2024-17",
        "Voornaam": "Anneke",
        "Tussenvoegsel": "van der",
        "Achternaam": "Berg",
        "Geboortedatum": "07-03-1961",
        "Bezoek postcode": "1234 AB",
        "Telefoonnummer primair": "0612345678",
        "Email primair": "anneke@example.org",
        "Akkoord privacybeleid": "Ja",
        "Opmerkingen": "belt liever; niet mailen",
    }
    text = io.StringIO()
    writer = csv.writer(text, delimiter=";", lineterminator="\n")
    writer.writerows([columns, [values.get(name, "") for name in columns]])
    return b"\xef\xbb\xbf" + text.getvalue().encode()


def test_an_econobis_contact_export_reads_with_its_repeated_headers_numbered() -> None:
    """The columns of an Econobis contact export, as its source lists them
    (Ecodenl/econobis, app/Helpers/CSV/ContactCSVHelper.php): the columns of a
    contact's occupation repeat names of the contact's own (Voornaam, Achternaam...);
    those read as "Voornaam (2)" and so on, and the contact's own keep their names."""
    columns = ECONOBIS_CONTACT_COLUMNS + ECONOBIS_OCCUPATION_COLUMNS
    found = detect(econobis_export(columns), max_bytes=MAX_BYTES)
    assert len(found.columns) == len(columns)
    assert found.columns[: len(ECONOBIS_CONTACT_COLUMNS)] == tuple(ECONOBIS_CONTACT_COLUMNS)
    assert "Voornaam (2)" in found.columns and "Achternaam (2)" in found.columns
    assert found.warnings[0] == (
        'Columns 7 and 71 are both named "Aanspreektitel": column 71 is read as '
        '"Aanspreektitel (2)".'
    )
    assert found.samples[0].values["Voornaam"] == "Anneke"


def test_an_econobis_contact_export_without_occupations_reads() -> None:
    found = detect(econobis_export(ECONOBIS_CONTACT_COLUMNS), max_bytes=MAX_BYTES)
    assert (found.separator, found.encoding) == (";", "utf-8-sig")
    assert found.columns == tuple(ECONOBIS_CONTACT_COLUMNS)
    [row] = found.samples
    assert row.values["Tussenvoegsel"] == "van der"
    assert row.values["Telefoonnummer primair"] == "0612345678"
    assert parse_date(row.values["Geboortedatum"]) == date(1961, 3, 7)
    with pytest.raises(InvalidValue, match='"Ja" is not a date'):
        parse_date(row.values["Akkoord privacybeleid"])


# graphql-api check-file --------------------------------------------------------------


def test_check_file_reads_a_file_to_its_end_as_an_import_would(tmp_path: Path) -> None:
    """The command an operator runs on a file before importing it: how it was read, its
    columns, its first rows and how many rows it has; or the first thing wrong with it, as
    one line and exit status 1."""
    env = {**os.environ, "GRAPHQL_API_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}
    dutch = tmp_path / "leden.csv"
    lines = ["Voornaam;Achternaam;Postcode", *(f"Anna {n};Bakker;0{n:03d} AB" for n in range(7))]
    dutch.write_bytes("\r\n".join(lines).replace("Anna 0", "Anaïs").encode("windows-1252"))
    read = cli(env, "check-file", str(dutch))
    assert read.returncode == 0, read.stderr
    assert read.stdout.splitlines() == [
        "CSV (windows-1252, separator ;): 3 columns, 7 rows",
        "Columns: Voornaam, Achternaam, Postcode",
        "Row 2: Voornaam=Anaïs; Achternaam=Bakker; Postcode=0000 AB",
        *(
            f"Row {n + 2}: Voornaam=Anna {n}; Achternaam=Bakker; Postcode=0{n:03d} AB"
            for n in range(1, 5)
        ),
    ]

    book = tmp_path / "leden.xlsx"
    workbook(book, {"Som": formula_sheet, "Contacten": contacts_sheet})
    second = cli(env, "check-file", str(book), "--sheet", "Contacten")
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith('XLSX (sheet "Contacten" of 2): ')
    refused = cli(env, "check-file", str(book))  # the first sheet holds a formula
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.startswith(f"error: {book}: Row ") and "formula" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1

    small = {**env, "GRAPHQL_API_MAX_UPLOAD_BYTES": "100"}
    too_large = cli(small, "check-file", str(dutch))
    assert too_large.returncode == 1 and "more than the" in too_large.stderr
    missing = cli(env, "check-file", str(tmp_path / "nergens.csv"))
    assert missing.returncode == 1
    assert missing.stderr.strip().endswith("nergens.csv: No such file or directory")
