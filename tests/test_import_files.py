"""Imports of real files over real HTTP (ASGI): files LibreOffice writes and reads back,
an Econobis contact export, the encodings, separators and sheets people's files have,
bad files each refused with a ``FILE_...`` code and nothing imported, what the upload
endpoint refuses, and ``graphql-api import`` on the command line.

The happy path and the helpers are tests/test_import.py's. The LibreOffice test skips
without it, except in CI (``CI=true``), where it fails."""

from __future__ import annotations

import io
import os
import random
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import xlsxwriter
from sqlalchemy import func, select
from starlette.applications import Starlette

from graphql_api.contacts.models import Contact
from graphql_api.groups.models import Membership
from graphql_api.testing import (
    GraphQLClient,
    cli,
    debian_program,
    make_user,
    new_contact_id,
    new_static_group_id,
    refused,
)
from tests.test_export import _csv, _download, _xlsx
from tests.test_import import (
    JOB,
    START,
    UNDO,
    _auth,
    contact_count,
    finished,
    start,
    upload,
)
from tests.test_import_reading import (
    ECONOBIS_CONTACT_COLUMNS,
    ECONOBIS_OCCUPATION_COLUMNS,
    econobis_export,
    zip_of,
)

PREVIEW = """
query($u: ID!, $sheet: String) {
  importPreview(uploadId: $u, sheet: $sheet) {
    fileKind columns encoding separator sheet sheets
    suggestedColumns { column field } errors { field code message }
  }
}"""
REPORT = """
query($j: ID!) {
  importReport(jobId: $j) {
    created updated unchanged skipped rejected pending errorFileUrl
    rows { row status cells problems { column code message warning } }
  }
}"""
FIELDS = ("first_name", "last_name", "email", "postal_code", "city", "phone", "external_id")


async def preview(client: GraphQLClient, upload_id: str, sheet: str | None = None) -> Any:
    return (await client.data(PREVIEW, {"u": upload_id, "sheet": sheet}))["importPreview"]


async def outcome(client: GraphQLClient, job_id: str) -> dict[str, Any]:
    return (await client.data(REPORT, {"j": job_id}))["importReport"]


async def imported(
    app: Starlette, client: GraphQLClient, upload_id: str, **given: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start an import (it must be accepted) and run its job, which must succeed: the
    started payload and the report."""
    started = await start(client, uploadId=upload_id, **given)
    assert started["errors"] == [], started["errors"]
    job = await finished(app, client, started["job"]["id"])
    assert job["state"] == "SUCCEEDED", job
    return started, await outcome(client, started["job"]["id"])


async def contacts(app: Starlette) -> set[tuple[str | None, ...]]:
    """Every contact's ``FIELDS``, to compare what imports made."""
    async with app.state.sessions() as session:
        found = await session.execute(select(*(getattr(Contact, name) for name in FIELDS)))
        return {tuple(row) for row in found}


async def counts(app: Starlette) -> tuple[int, int]:
    """How many contacts and memberships there are."""
    async with app.state.sessions() as session:
        memberships = await session.scalar(select(func.count()).select_from(Membership))
    return await contact_count(app), int(memberships or 0)


def csv_bytes(rows: list[list[str]], separator: str = ";", encoding: str = "utf-8") -> bytes:
    """Rows as a CSV as Excel writes it; a value holding the separator is quoted."""
    quoted = [[f'"{cell}"' if separator in cell else cell for cell in row] for row in rows]
    return "".join(separator.join(row) + "\r\n" for row in quoted).encode(encoding)


def xlsx_bytes(sheets: dict[str, list[list[Any]]]) -> bytes:
    """A workbook with a sheet per name; a cell starting with ``=`` is a formula."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for number, row in enumerate(rows):
            sheet.write_row(number, 0, row)
    book.close()
    return buffer.getvalue()


def columns(*pairs: str) -> list[dict[str, str]]:
    """``columns("Voornaam=FIRST_NAME", ...)`` as ``ImportInput.columns``."""
    return [dict(zip(("column", "field"), pair.split("="), strict=True)) for pair in pairs]


# LibreOffice: a CSV saved as XLSX, an export saved as CSV ------------------------------


@pytest.fixture(scope="module")
def soffice(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``convert(path, to, *options)``: the file LibreOffice writes opening ``path`` and
    saving it as ``to``, as someone opening a file and saving it again would; one
    profile for the module, since making one takes the longest."""
    program = debian_program("soffice", "libreoffice-calc-nogui")
    root = tmp_path_factory.mktemp("soffice")
    profile = (root / "profile").as_uri()

    def convert(source: Path, to: str, *options: str) -> Path:
        out = root / uuid.uuid4().hex
        command = [program, f"-env:UserInstallation={profile}", "--headless", *options]
        command += ["--convert-to", to, "--outdir", str(out), str(source)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, done.stderr
        [written] = out.iterdir()
        return written

    return convert


MEMBERS = [
    ["Voornaam", "Achternaam", "E-mail", "Postcode", "Plaats"],
    ["Zoë", "IJsselstein", "zoe@example.nl", "0123 AB", "Wijk bij Duurstede"],
    ["Anaïs", "van 't Hof", "anais@example.nl", "1011 AB", "Amsterdam"],
    ["Renée", "Müller-Çelik", "renee@example.nl", "0999 ZZ", "Ölst; aan de Vecht"],
]
SUGGESTED = columns(
    "Voornaam=FIRST_NAME",
    "Achternaam=LAST_NAME",
    "E-mail=EMAIL",
    "Postcode=POSTAL_CODE",
    "Plaats=CITY",
)
EXPORTED = ["firstName", "lastName", "email", "postalCode", "city"]
TEXT_COLUMNS = "CSV:59,34,76,1,1/2/2/2/3/2/4/2/5/2"
"""LibreOffice's CSV import filter: ``;``, ``"``, UTF-8, from line 1, the five columns as
text (as someone keeping 0123 AB as written chooses)."""
CSV_SEMICOLON_UTF8 = "csv:Text - txt - csv (StarCalc):59,34,76"


def saved(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir()
    path = folder / name
    path.write_bytes(data)
    return path


async def test_libreoffice_files_import_as_the_csv_they_came_from(
    app: Starlette,
    http: httpx.AsyncClient,
    client: GraphQLClient,
    soffice: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """A CSV, and the same CSV saved as XLSX by LibreOffice, make the same contacts; the
    members exported as XLSX and saved as CSV by LibreOffice find them all unchanged."""
    token = client.token or ""
    source = saved(tmp_path / "csv", "leden.csv", csv_bytes(MEMBERS))
    from_csv = await upload(http, token, source.read_bytes(), "leden.csv")
    seen = await preview(client, from_csv)
    assert (seen["fileKind"], seen["separator"], seen["encoding"]) == ("CSV", ";", "utf-8")
    assert seen["suggestedColumns"] == SUGGESTED
    started, done = await imported(app, client, from_csv, columns=SUGGESTED)
    assert (done["created"], done["rejected"]) == (3, 0)
    by_csv = await contacts(app)
    assert {(c[0], c[1], c[2], c[3], c[4]) for c in by_csv} == {tuple(r) for r in MEMBERS[1:]}
    undo = (await client.data(UNDO, {"j": started["job"]["id"]}))["undoImport"]
    assert (await finished(app, client, undo["job"]["id"]))["state"] == "SUCCEEDED"
    assert await contact_count(app) == 0

    book = soffice(source, "xlsx", f"--infilter={TEXT_COLUMNS}")
    from_xlsx = await upload(http, token, book.read_bytes(), "leden.xlsx")
    seen = await preview(client, from_xlsx)
    assert (seen["fileKind"], seen["encoding"], seen["separator"]) == ("XLSX", None, None)
    assert seen["suggestedColumns"] == SUGGESTED
    started, done = await imported(
        app, client, from_xlsx, columns=SUGGESTED, newGroupName="Uit LibreOffice"
    )
    assert (done["created"], done["rejected"]) == (3, 0)
    assert await contacts(app) == by_csv

    exported = await _download(
        http,
        "/exports/group-members",
        token,
        groupId=started["group"]["id"],
        format="xlsx",
        fields=",".join(EXPORTED),
    )
    assert _xlsx(exported)[0] == EXPORTED
    again = soffice(saved(tmp_path / "export", "leden.xlsx", exported), CSV_SEMICOLON_UTF8)
    fields = ["FIRST_NAME", "LAST_NAME", "EMAIL", "POSTAL_CODE", "CITY"]
    suggested = [{"column": c, "field": f} for c, f in zip(EXPORTED, fields, strict=True)]
    before = await counts(app)
    # LibreOffice's CSV of the export, and the export itself.
    for data, name, kind in [
        (again.read_bytes(), "leden.csv", "CSV"),
        (exported, "x.xlsx", "XLSX"),
    ]:
        from_export = await upload(http, token, data, name)
        seen = await preview(client, from_export)
        assert (seen["fileKind"], seen["columns"]) == (kind, EXPORTED)
        assert seen["suggestedColumns"] == suggested
        _, done = await imported(
            app, client, from_export, columns=suggested, matchBy="EMAIL", duplicates="UPDATE"
        )
        assert [row["status"] for row in done["rows"]] == ["UNCHANGED"] * 3
        assert (done["created"], done["updated"], done["rejected"]) == (0, 0, 0)
        assert await counts(app) == before
    assert await contacts(app) == by_csv


# An Econobis contact export -----------------------------------------------------------


async def test_an_econobis_contact_export_imports_with_the_suggested_mapping(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    """All of its columns, the occupation's repeating the contact's own names: the
    suggestion maps the contact's own, and importing it again by "#" makes nothing."""
    data = econobis_export(ECONOBIS_CONTACT_COLUMNS + ECONOBIS_OCCUPATION_COLUMNS)
    upload_id = await upload(http, client.token or "", data, "contacten.csv")
    seen = await preview(client, upload_id)
    assert seen["errors"] == []
    assert (seen["encoding"], seen["separator"]) == ("utf-8-sig", ";")
    suggested = seen["suggestedColumns"]
    pairs = [(s["column"], s["field"]) for s in suggested]
    for pair in [
        ("#", "EXTERNAL_ID"),
        ("Voornaam", "FIRST_NAME"),
        ("Email primair", "EMAIL"),
        ("Telefoonnummer primair", "PHONE"),
    ]:
        assert pair in pairs
    last_name = [column for column, field in pairs if field == "LAST_NAME"]
    assert last_name == ["Tussenvoegsel", "Achternaam"]  # joined in this order
    assert not [column for column, _ in pairs if "(2)" in column]  # the occupation's

    _, done = await imported(app, client, upload_id, columns=suggested)
    assert (done["created"], done["rejected"]) == (1, 0)
    assert await contacts(app) == {
        ("Anneke", "van der Berg", "anneke@example.org", "1234 AB", None, "0612345678", "C2024-17")
    }
    _, again = await imported(
        app, client, upload_id, columns=suggested, matchBy="EXTERNAL_ID", duplicates="UPDATE"
    )
    assert (again["created"], again["unchanged"], again["rejected"]) == (0, 1, 0)
    assert await contact_count(app) == 1


# Encodings, separators, sheets --------------------------------------------------------

PEOPLE = [
    ["Voornaam", "Achternaam", "Plaats"],
    ["Anaïs", "Dekker", "Crèvecœur"],
    ["Zoë", "Bakker, van", "Curaçao"],
]
UITLEG = [["Uitleg", "Som"], ["Eén rij per lid", 1], ["", "=B2+1"]]


@pytest.mark.parametrize(
    ("name", "data", "sheet", "read_as"),
    [
        ("windows.csv", csv_bytes(PEOPLE, ";", "windows-1252"), None, ("windows-1252", ";", None)),
        ("bom.csv", b"\xef\xbb\xbf" + csv_bytes(PEOPLE, ","), None, ("utf-8-sig", ",", None)),
        (
            "leden.xlsx",
            xlsx_bytes({"Uitleg": UITLEG, "Leden": PEOPLE}),
            "Leden",
            (None, None, "Leden"),
        ),
    ],
)
async def test_encodings_separators_and_sheets_read_accents_right(
    app: Starlette,
    http: httpx.AsyncClient,
    client: GraphQLClient,
    name: str,
    data: bytes,
    sheet: str | None,
    read_as: tuple[str | None, ...],
) -> None:
    """Windows-1252 with ``;`` (œ is one of its bytes Latin-1 lacks), UTF-8 with a BOM and
    ``,``, and the second sheet of a workbook whose first holds a formula (so the job must
    read the sheet named, not the first)."""
    upload_id = await upload(http, client.token or "", data, name)
    seen = await preview(client, upload_id, sheet)
    assert seen["errors"] == []
    assert (seen["encoding"], seen["separator"], seen["sheet"]) == read_as
    assert seen["columns"] == PEOPLE[0]
    mapping = columns("Voornaam=FIRST_NAME", "Achternaam=LAST_NAME", "Plaats=CITY")
    _, done = await imported(app, client, upload_id, columns=mapping, sheet=sheet)
    assert (done["created"], done["rejected"]) == (2, 0)
    assert {(c[0], c[1], c[4]) for c in await contacts(app)} == {tuple(r) for r in PEOPLE[1:]}


async def test_the_first_sheet_holding_a_formula_is_refused_naming_the_other_sheets(
    http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    data = xlsx_bytes({"Uitleg": UITLEG, "Leden": PEOPLE})
    upload_id = await upload(http, client.token or "", data, "leden.xlsx")
    assert (await preview(client, upload_id))["errors"][0]["code"] == "FILE_FORMULA"
    unknown = (await preview(client, upload_id, "Blad1"))["errors"]
    assert [(e["code"], e["message"]) for e in unknown] == [
        ("FILE_UNKNOWN_SHEET", 'there is no sheet "Blad1" (there are "Uitleg", "Leden")')
    ]


# Bad files: each refused with a FILE_ code, nothing imported ---------------------------

FULL_ROWS = [["Voornaam", "E-mail"]] + [[f"Lid {n}", f"lid{n}@example.nl"] for n in range(2, 9)]
"""Rows 2 to 8: more than the preview's 5 samples, so what comes after them is only read
by the import's job."""


def short_row_at_9() -> bytes:
    return csv_bytes(FULL_ROWS) + b"Ria\r\n" + csv_bytes([["Sem", "sem@example.nl"]])


def mixed_at_9() -> bytes:
    """UTF-8 (Zoë) until a line pasted in from a Windows-1252 file (Anaïs) at row 9."""
    utf8 = csv_bytes([*FULL_ROWS[:2], ["Zoë", "zoe@example.nl"], *FULL_ROWS[3:]])
    return utf8 + csv_bytes([["Anaïs", "anais@example.nl"]], encoding="windows-1252")


BAD_FILES = {
    # name: (file name, bytes, where refused, code)
    "empty": ("leeg.csv", b"\xef\xbb\xbf\r\n\r\n", "startImport", "FILE_EMPTY"),
    "header only": ("kop.csv", b"Voornaam;E-mail\r\n", "startImport", "FILE_NO_ROWS"),
    "short row at 9": ("kort.csv", short_row_at_9(), "job", "FILE_ROW_LENGTH"),
    "mixed encoding at 9": ("gemengd.csv", mixed_at_9(), "job", "FILE_ENCODING"),
    # Named .xlsx, so read as one (docs/import.md), and refused as not a zip; by another
    # name it would be read as a CSV and refused as no text in either encoding.
    "PK but not a zip": (
        "leden.xlsx",
        b"PK" + random.Random(0).randbytes(3000),
        "startImport",
        "FILE_NOT_XLSX",
    ),
    "random bytes by another name": (
        "leden.txt",
        b"PK" + random.Random(0).randbytes(3000),
        "startImport",
        "FILE_ENCODING",
    ),
    "a zip header but not a zip": (
        "leden.xlsx",
        b"PK\x03\x04" + random.Random(1).randbytes(3000),
        "startImport",
        "FILE_NOT_XLSX",
    ),
    "zip bomb": (
        "bom.xlsx",
        zip_of({"xl/worksheets/sheet1.xml": bytes(4 * 2**20)}),
        "startImport",
        "FILE_UNPACKS_TOO_LARGE",
    ),
    "formula": (
        "som.xlsx",
        xlsx_bytes({"Leden": [*FULL_ROWS[:3], ["=A2", "x@example.nl"]]}),
        "startImport",
        "FILE_FORMULA",
    ),
}


@pytest.fixture
async def group(client: GraphQLClient) -> str:
    """A static group with one member, for the bad files to be imported into."""
    member = await new_contact_id(client, firstName="Al", email="al@example.nl")
    return await new_static_group_id(client, "Leden", [member])


@pytest.mark.parametrize("bad", BAD_FILES.values(), ids=list(BAD_FILES))
async def test_a_bad_file_is_refused_with_a_file_code_and_imports_nothing(
    app: Starlette,
    http: httpx.AsyncClient,
    client: GraphQLClient,
    group: str,
    bad: tuple[str, bytes, str, str],
) -> None:
    """Refused at ``startImport`` (its payload's errors) when the preview's reading finds
    it; in the job when only reading to the end does, failing it before any row is
    written: not even the rows before the bad one are imported."""
    name, data, where, code = bad
    upload_id = await upload(http, client.token or "", data, name)
    mapping = columns("Voornaam=FIRST_NAME", "E-mail=EMAIL")
    given = {"uploadId": upload_id, "columns": mapping, "groupId": group}
    before = await counts(app)
    if where == "startImport":
        [error] = (await preview(client, upload_id))["errors"]
        assert (error["field"], error["code"]) == (["uploadId"], code)
        [error] = await refused(app, client, START, {"i": given})
        assert (error["field"], error["code"]) == (["input", "uploadId"], code), error
        assert error["message"]
    else:
        assert (await preview(client, upload_id))["errors"] == []
        started = await start(client, **given)
        assert started["errors"] == []
        job = await finished(app, client, started["job"]["id"])
        assert job["state"] == "FAILED"
        [error] = job["errors"]
        assert error["code"] == code and error["message"].startswith("Row 9:"), error
        done = await outcome(client, started["job"]["id"])
        assert (done["created"], done["rejected"], done["rows"]) == (0, 0, [])
    assert await counts(app) == before == (1, 1)


async def test_a_two_digit_year_rejects_its_row_naming_the_column(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient, group: str
) -> None:
    data = csv_bytes([["Voornaam", "E-mail", "Lid sinds"], ["Bo", "bo@example.nl", "31-12-25"]])
    upload_id = await upload(http, client.token or "", data)
    mapping = columns("Voornaam=FIRST_NAME", "E-mail=EMAIL", "Lid sinds=MEMBER_SINCE")
    before = await counts(app)
    _, done = await imported(app, client, upload_id, columns=mapping, groupId=group)
    assert (done["created"], done["rejected"]) == (0, 1)
    [row] = done["rows"]
    assert (row["row"], row["status"], row["cells"]) == (
        2,
        "REJECTED",
        ["Bo", "bo@example.nl", "31-12-25"],
    )
    [problem] = row["problems"]
    assert (problem["column"], problem["code"], problem["warning"]) == (
        "Lid sinds",
        "INVALID",
        False,
    )
    assert "two-digit year" in problem["message"]
    errors = await _download(http, done["errorFileUrl"], client.token or "")
    [header, rejected] = _csv(errors)
    assert header[-1] == "Reden (reason)"
    assert rejected[-1].startswith('Row 2: Lid sinds: "31-12-25" has a two-digit year')
    assert await counts(app) == before


# The upload endpoint ------------------------------------------------------------------


@pytest.fixture
async def small_http(app_factory: Callable[..., Starlette]) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an application taking uploads of at most 1000 bytes."""
    small = app_factory(max_upload_bytes=1000)
    transport = httpx.ASGITransport(app=small)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    """A body sent in parts, without a Content-Length: the endpoint must count it."""
    for start_at in range(0, len(data), 300):
        yield data[start_at : start_at + 300]


async def test_what_the_upload_endpoint_refuses(
    app: Starlette,
    http: httpx.AsyncClient,
    small_http: httpx.AsyncClient,
    client: GraphQLClient,
) -> None:
    token = client.token or ""
    body = csv_bytes(PEOPLE)
    _, viewer = await make_user(app, "Vera Kijk", "vera@example.coop", role="viewer")

    def post(to: httpx.AsyncClient, content: Any, token: str | None, **headers: str) -> Any:
        sent = {**headers, **(_auth(token) if token else {})}
        return to.post("/uploads", params={"name": "leden.csv"}, content=content, headers=sent)

    assert (await post(http, body, None)).status_code == 401
    forbidden = await post(http, body, viewer)
    assert (forbidden.status_code, forbidden.json()["errors"][0]["code"]) == (403, "FORBIDDEN")
    assert (await post(small_http, bytes(1001), token)).status_code == 413
    assert (await post(small_http, chunks(bytes(1001)), token)).status_code == 413
    fits = await post(small_http, chunks(b"a;b\r\n" * 200), token)
    assert (fits.status_code, fits.json()["size"]) == (201, 1000)
    assert (await post(http, b"", token)).status_code == 400
    assert (await http.get("/uploads", headers=_auth(token))).status_code == 405
    gzipped = await post(http, body, token, **{"Content-Encoding": "gzip"})
    assert gzipped.status_code == 415
    made = await post(http, body, token)
    assert made.status_code == 201
    assert made.json()["filename"] == "leden.csv" and made.json()["size"] == len(body)


async def test_an_upload_and_an_error_file_are_their_owners_alone(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    _, token = await make_user(app, "Mo Ander", "mo@example.coop")
    other = GraphQLClient(http, token)
    theirs = await upload(http, token, csv_bytes(PEOPLE))
    mine = await upload(http, client.token or "", csv_bytes(PEOPLE))
    mapping = columns("Voornaam=FIRST_NAME")

    [error] = (await preview(client, theirs))["errors"]
    assert (error["field"], error["code"]) == (["uploadId"], "NOT_FOUND")
    [error] = await refused(app, client, START, {"i": {"uploadId": theirs, "columns": mapping}})
    assert error["code"] == "NOT_FOUND"
    assert (await preview(other, theirs))["errors"] == []

    started, done = await imported(app, client, mine, columns=mapping)
    path = done["errorFileUrl"]
    assert (await http.get(path)).status_code == 401
    assert (await http.get(path, headers=_auth(token))).status_code == 404
    assert (await http.get(path, headers=_auth(client.token or ""))).status_code == 200
    assert (await other.data(JOB, {"j": started["job"]["id"]}))["job"] is None
    assert (await other.data(REPORT, {"j": started["job"]["id"]}))["importReport"] is None
    assert (await http.get("/imports/x/errors.csv", headers=_auth(token))).status_code == 404


# graphql-api import -------------------------------------------------------------------


@pytest.fixture
def env(database_url: str, app: Starlette) -> dict[str, str]:
    """The environment of ``graphql-api`` on the test database (migrated; its tables are
    emptied after the test, as ``app``'s are)."""
    return {**os.environ, "GRAPHQL_API_DATABASE_URL": database_url, "GRAPHQL_API_DEV_MODE": "false"}


CLEAN = [
    ["Voornaam", "Achternaam", "E-mail", "Plaats"],
    ["Anaïs", "Dekker", "anais@example.nl", "Ede"],
]


async def test_the_import_command(app: Starlette, env: dict[str, str], tmp_path: Path) -> None:
    """Columns guessed from the header; exit status 0 when every row was imported, 2 when
    some were rejected (why on stderr), 1 when the file cannot be read; a dry run writes
    nothing."""
    clean = saved(tmp_path / "clean", "leden.csv", csv_bytes(CLEAN, encoding="windows-1252"))
    checked = cli(env, "import", str(clean), "--dry-run")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"Checked {clean} (job ")
    assert checked.stdout.rstrip().endswith("1 created")
    assert await contact_count(app) == 0

    done = cli(env, "import", str(clean), "--new-group", "Uit de opdrachtregel")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "Columns (guessed from the header): Voornaam=first_name, Achternaam=last_name, "
        "E-mail=email, Plaats=city"
    ]
    assert done.stdout.rstrip().endswith("1 created")
    assert await contacts(app) == {("Anaïs", "Dekker", "anais@example.nl", None, "Ede", None, None)}

    rows = [*CLEAN, ["Bo", "Berg", "geen-adres", "Epe"], ["Cas", "Kok", "cas@example.nl", "Ede"]]
    some = saved(tmp_path / "some", "leden.csv", csv_bytes(rows))
    rejected = cli(
        env, "import", str(some), "--column", "E-mail=email", "--column", "Voornaam=first_name"
    )
    assert rejected.returncode == 2, rejected.stderr
    assert "1 rejected, 1 created, 1 skipped" in rejected.stdout
    assert rejected.stderr.splitlines() == ["Row 3: E-mail: 'geen-adres' is not an e-mail address."]
    assert await contact_count(app) == 2

    header_only = saved(tmp_path / "header", "kop.csv", b"Voornaam;E-mail\r\n")
    unread = cli(env, "import", str(header_only))
    assert (unread.returncode, unread.stdout) == (1, "")
    assert unread.stderr.splitlines()[-1] == (
        "error: Row 2: the file has a header but no rows under it"
    )
    failed = cli(env, "import", str(saved(tmp_path / "short", "kort.csv", short_row_at_9())))
    assert (failed.returncode, failed.stdout) == (1, "")  # not "Imported ..."
    assert failed.stderr.splitlines()[-1] == (
        "error: the job failed: Row 9: the row has 1 of the header's 2 columns"
    )
    missing = cli(env, "import", str(tmp_path / "nergens.csv"))
    assert missing.returncode == 1 and "No such file or directory" in missing.stderr
    assert await contact_count(app) == 2


async def test_the_import_command_takes_a_tab_separator_as_check_file_does(
    app: Starlette, env: dict[str, str], tmp_path: Path
) -> None:
    """``\\t`` as docs/import.md writes it, for both commands."""
    tabs = saved(tmp_path / "tabs", "leden.tsv", csv_bytes(CLEAN, "\t"))
    assert cli(env, "check-file", str(tabs), "--separator", "\\t").returncode == 0
    done = cli(env, "import", str(tabs), "--separator", "\\t")
    assert done.returncode == 0, done.stderr
    assert await contact_count(app) == 1


async def test_the_import_command_guesses_the_columns_of_the_sheet_named(
    app: Starlette, env: dict[str, str], tmp_path: Path
) -> None:
    data = xlsx_bytes({"Uitleg": UITLEG, "Leden": PEOPLE})
    book = saved(tmp_path / "book", "leden.xlsx", data)
    done = cli(env, "import", str(book), "--sheet", "Leden")
    assert done.returncode == 0, done.stderr
    assert await contact_count(app) == 2
