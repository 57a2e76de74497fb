"""Imports (docs/import.md) end to end over real HTTP (ASGI): upload a file, look at it,
map its columns, check it (dry run), import it as a job, read each row's outcome and the
error file, undo it; with duplicates matched by e-mail or external id, groups, and every
refusal changing nothing."""

from __future__ import annotations

import csv
import io
import signal
from collections import Counter
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update
from starlette.applications import Starlette

from graphql_api.contacts.imports.models import ImportRow
from graphql_api.contacts.models import Contact
from graphql_api.graphql_base.relay import decode_id, to_global_id
from graphql_api.groups.models import Membership
from graphql_api.jobs.models import Job, JobState
from graphql_api.kernel.db import utcnow
from graphql_api.testing import (
    GraphQLClient,
    StatementCounter,
    job_row,
    make_job_runner,
    make_user,
    membership_differences,
    new_contact_id,
    new_group_id,
    new_static_group_id,
    refused,
    run_jobs,
    wait_for_job,
)
from graphql_api.users.models import AuditEntry
from tests.test_job_resume import CHUNK, start_worker

PREVIEW = """
query($u: ID!, $s: String) {
  importPreview(uploadId: $u, separator: $s) {
    fileKind columns samples encoding separator sheet sheets
    suggestedColumns { column field } errors { field code message }
  }
}"""
START = """
mutation($i: ImportInput!) {
  startImport(input: $i) {
    job { id state } group { id name } errors { field code message }
  }
}"""
REPORT = """
query($j: ID!, $status: ImportRowStatus) {
  importReport(jobId: $j) {
    job { state } dryRun filename created updated unchanged skipped rejected pending errorFileUrl
    rows(status: $status) { row status contactId problems { column code message warning } undo }
  }
}"""
UNDO = """
mutation($j: ID!) { undoImport(jobId: $j) { job { id } errors { field code message } } }
"""
JOB = "query($j: ID!) { job(id: $j) { state total done errors { code message } } }"
COLUMNS = [
    {"column": "Voornaam", "field": "FIRST_NAME"},
    {"column": "Tussenvoegsel", "field": "LAST_NAME"},
    {"column": "Achternaam", "field": "LAST_NAME"},
    {"column": "E-mail", "field": "EMAIL"},
    {"column": "Plaats", "field": "CITY"},
]
ZONE = ZoneInfo("Europe/Amsterdam")
LEDEN = (
    "Voornaam;Tussenvoegsel;Achternaam;E-mail;Plaats\r\n"
    "Anna;de;Vries;anna@example.nl;Utrecht\r\n"
    "Bram;;Bakker;bram@example.nl;Zeist\r\n"
    "Cor;van;Dam;geen-adres;Houten\r\n"
)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def upload(http: httpx.AsyncClient, token: str, body: bytes, name: str = "leden.csv") -> str:
    response = await http.post(
        "/uploads", params={"name": name}, content=body, headers=_auth(token)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def start(client: GraphQLClient, **given: Any) -> dict[str, Any]:
    payload = (await client.data(START, {"i": given}))["startImport"]
    return payload


async def finished(app: Starlette, client: GraphQLClient, job_id: str) -> dict[str, Any]:
    await run_jobs(app)
    return (await client.data(JOB, {"j": job_id}))["job"]


async def report(client: GraphQLClient, job_id: str, status: str | None = None) -> dict[str, Any]:
    return (await client.data(REPORT, {"j": job_id, "status": status}))["importReport"]


async def rows_name_their_contacts(app: Starlette, job_id: str) -> None:
    """Each row that made a contact names that contact: its last name is the row's."""
    pk = decode_id(job_id, "Job", ["id"])
    async with app.state.sessions() as session:
        made = {
            row.contact_id: row.values["last_name"]
            for row in await session.scalars(
                select(ImportRow).where(ImportRow.job_id == pk, ImportRow.status == "CREATED")
            )
        }
        names = dict((await session.execute(select(Contact.id, Contact.last_name))).all())
    assert made and all(names[contact] == name for contact, name in made.items())


async def contact_count(app: Starlette) -> int:
    async with app.state.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Contact)) or 0)


async def test_a_file_is_uploaded_previewed_checked_imported_and_undone(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    upload_id = await upload(http, client.token or "", LEDEN.encode("windows-1252"))
    preview = (await client.data(PREVIEW, {"u": upload_id}))["importPreview"]
    assert preview["errors"] == []
    assert preview["fileKind"] == "CSV" and preview["separator"] == ";"
    assert preview["columns"] == ["Voornaam", "Tussenvoegsel", "Achternaam", "E-mail", "Plaats"]
    assert preview["samples"][0] == ["Anna", "de", "Vries", "anna@example.nl", "Utrecht"]
    assert preview["suggestedColumns"] == COLUMNS
    before = await contact_count(app)

    dry = await start(client, uploadId=upload_id, columns=COLUMNS, dryRun=True)
    assert dry["errors"] == [] and dry["group"] is None
    assert (await finished(app, client, dry["job"]["id"]))["state"] == "SUCCEEDED"
    checked = await report(client, dry["job"]["id"])
    assert (checked["dryRun"], checked["created"], checked["rejected"]) == (True, 2, 1)
    assert await contact_count(app) == before

    done = await start(client, uploadId=upload_id, columns=COLUMNS, newGroupName="Import 1")
    assert done["errors"] == [] and done["group"]["name"] == "Import 1"
    job = await finished(app, client, done["job"]["id"])
    assert (job["state"], job["total"], job["done"]) == ("SUCCEEDED", 3, 3)
    outcome = await report(client, done["job"]["id"])
    assert (outcome["created"], outcome["rejected"]) == (2, 1)
    rejected = (await report(client, done["job"]["id"], "REJECTED"))["rows"]
    assert [(r["row"], r["problems"][0]["column"], r["problems"][0]["code"]) for r in rejected] == [
        (4, "E-mail", "INVALID")
    ]
    assert await contact_count(app) == before + 2
    async with app.state.sessions() as session:
        names = set(
            await session.scalars(select(Contact.last_name).where(Contact.city == "Utrecht"))
        )
    assert names == {"de Vries"}

    errors = await http.get(outcome["errorFileUrl"], headers=_auth(client.token or ""))
    assert errors.status_code == 200
    rows = list(csv.reader(io.StringIO(errors.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][-1] == "Reden (reason)" and rows[1][:5] == [
        "Cor",
        "van",
        "Dam",
        "geen-adres",
        "Houten",
    ]
    assert "E-mail" in rows[1][5] and len(rows) == 2

    undo = (await client.data(UNDO, {"j": done["job"]["id"]}))["undoImport"]
    assert undo["errors"] == []
    assert (await finished(app, client, undo["job"]["id"]))["state"] == "SUCCEEDED"
    assert await contact_count(app) == before
    undone = await report(client, done["job"]["id"], "CREATED")
    assert [r["undo"] for r in undone["rows"]] == ["removed", "removed"]
    assert await membership_differences(app) == []


def _csv(*rows: str) -> bytes:
    return ("\r\n".join(rows) + "\r\n").encode()


EXISTING = _csv("E-mail;Plaats;Telefoon", "ANNA@example.nl;Nieuwegein;0612345678")
EMAIL_CITY_PHONE = [
    {"column": "E-mail", "field": "EMAIL"},
    {"column": "Plaats", "field": "CITY"},
    {"column": "Telefoon", "field": "PHONE"},
]


@pytest.mark.parametrize(
    ("duplicates", "status", "city", "phone"),
    [
        ("SKIP", "SKIPPED", "Utrecht", None),
        ("UPDATE", "UPDATED", "Nieuwegein", "0612345678"),
        ("FILL_EMPTY", "UPDATED", "Utrecht", "0612345678"),
    ],
)
async def test_a_contact_found_by_e_mail_whatever_its_case_is_skipped_updated_or_filled(
    app: Starlette,
    http: httpx.AsyncClient,
    client: GraphQLClient,
    duplicates: str,
    status: str,
    city: str,
    phone: str | None,
) -> None:
    await new_contact_id(client, firstName="Anna", email="anna@Example.nl", city="Utrecht")
    group = await new_static_group_id(client, "Nieuwsbrief", [])
    upload_id = await upload(http, client.token or "", EXISTING)
    started = await start(
        client, uploadId=upload_id, columns=EMAIL_CITY_PHONE, duplicates=duplicates, groupId=group
    )
    assert (await finished(app, client, started["job"]["id"]))["state"] == "SUCCEEDED"
    [row] = (await report(client, started["job"]["id"]))["rows"]
    assert row["status"] == status and row["contactId"] is not None
    async with app.state.sessions() as session:
        [contact] = (await session.scalars(select(Contact))).all()
        members = await session.scalar(select(func.count()).select_from(Membership))
    assert (contact.email, contact.city, contact.phone) == ("anna@Example.nl", city, phone)
    # Skipped or not, the contact joins the import's group: the group is "everyone in the file".
    assert members == 1


async def test_two_contacts_with_the_key_reject_the_row(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    for name in ("Anna", "Anneke"):
        await new_contact_id(client, firstName=name, email="anna@example.nl")
    upload_id = await upload(http, client.token or "", EXISTING)
    started = await start(client, uploadId=upload_id, columns=EMAIL_CITY_PHONE, duplicates="UPDATE")
    await finished(app, client, started["job"]["id"])
    [row] = (await report(client, started["job"]["id"]))["rows"]
    assert row["status"] == "REJECTED"
    assert (row["problems"][0]["column"], row["problems"][0]["code"]) == ("E-mail", "DUPLICATE")
    assert "2 contacts have this key" in row["problems"][0]["message"]


REPEATS = _csv(
    "Nummer;Voornaam;Achternaam;E-mail;Plaats",
    "C-1;Anna;Vries;anna@example.nl;",
    "C-2;Bram;Bakker;bram@example.nl;Zeist",
    "C-1;Anna;Vries;ANNA@example.nl;Utrecht",
    "C-3;Cor;Dam;cor@example.nl;Houten",
)
REPEATS_COLUMNS = [
    {"column": "Nummer", "field": "EXTERNAL_ID"},
    {"column": "Voornaam", "field": "FIRST_NAME"},
    {"column": "Achternaam", "field": "LAST_NAME"},
    {"column": "E-mail", "field": "EMAIL"},
    {"column": "Plaats", "field": "CITY"},
]


@pytest.mark.parametrize("chunk", [1, 2, 100])
@pytest.mark.parametrize("match_by", ["EMAIL", "EXTERNAL_ID"])
async def test_rows_of_one_file_about_one_contact_make_it_once_and_a_dry_run_says_so(
    app_factory: Any, chunk: int, match_by: str
) -> None:
    """Whether the rows fall in one chunk or in two, and whether it is a dry run or not,
    the counts are the same: the dry run is what the import will do."""
    app = app_factory(job_chunk_size=chunk)
    _, token = await make_user(app, "Beheer", "beheer@example.coop", admin=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        client = GraphQLClient(http, token)
        upload_id = await upload(http, token, REPEATS)
        outcomes = []
        for dry_run in (True, False):
            started = await start(
                client,
                uploadId=upload_id,
                columns=REPEATS_COLUMNS,
                matchBy=match_by,
                duplicates="FILL_EMPTY",
                dryRun=dry_run,
            )
            assert (await finished(app, client, started["job"]["id"]))["state"] == "SUCCEEDED"
            found = await report(client, started["job"]["id"])
            outcomes.append([(r["row"], r["status"]) for r in found["rows"]])
            warning = found["rows"][2]["problems"]
            assert [(p["code"], p["warning"]) for p in warning] == [("DUPLICATE", True)]
        assert outcomes[0] == outcomes[1]
        assert outcomes[1] == [(2, "CREATED"), (3, "CREATED"), (4, "UPDATED"), (5, "CREATED")]
        async with app.state.sessions() as session:
            contacts = (await session.execute(select(Contact.external_id, Contact.city))).all()
        assert sorted(contacts) == [("C-1", "Utrecht"), ("C-2", "Zeist"), ("C-3", "Houten")]


GROUPED = _csv(
    "Voornaam;Achternaam;Plaats;Groepen;Lid sinds",
    'Anna;Vries;Utrecht;"leden 2025; nieuwsbrief";31-12-2025',
    "Bram;Bakker;Zeist;Nieuwsbrief;2024-01-15",
    "Cor;Dam;Houten;Onbekend;",
    "Dirk;Smit;Utrecht;Utrechters;",
    "Eva;Jong;Ede;;30-02-2025",
)
GROUPED_COLUMNS = [
    {"column": "Voornaam", "field": "FIRST_NAME"},
    {"column": "Achternaam", "field": "LAST_NAME"},
    {"column": "Plaats", "field": "CITY"},
    {"column": "Groepen", "field": "GROUPS"},
    {"column": "Lid sinds", "field": "MEMBER_SINCE"},
]
CITY_IS_UTRECHT = {"condition": {"field": "city", "op": "EQ", "value": "Utrecht"}}


async def test_rows_join_the_groups_they_name_since_their_day_and_derived_groups_follow(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    """Static groups named in a cell (any case, `;` between), the day of joining in Dutch
    or ISO form; an unknown or dynamic group, or a date not in the calendar, rejects its
    row. A dynamic group testing an imported field and a composite reading the static
    groups follow in the same chunk, and again when the import is undone."""
    leden = await new_static_group_id(client, "Leden 2025", [])
    nieuwsbrief = await new_static_group_id(client, "Nieuwsbrief", [])
    utrechters = await new_group_id(client, name="Utrechters", filter=CITY_IS_UTRECHT)
    both = await new_group_id(client, name="Allen", composedOfIds=[leden, nieuwsbrief])
    upload_id = await upload(http, client.token or "", GROUPED)
    started = await start(client, uploadId=upload_id, columns=GROUPED_COLUMNS)
    assert started["errors"] == []
    await finished(app, client, started["job"]["id"])
    rows = {r["row"]: r for r in (await report(client, started["job"]["id"]))["rows"]}
    assert {n: r["status"] for n, r in rows.items()} == {
        2: "CREATED",
        3: "CREATED",
        4: "REJECTED",
        5: "REJECTED",
        6: "REJECTED",
    }
    assert [(p["column"], p["code"]) for p in rows[4]["problems"]] == [("Groepen", "NOT_FOUND")]
    assert [(p["column"], p["code"]) for p in rows[5]["problems"]] == [("Groepen", "NOT_STATIC")]
    assert [(p["column"], p["code"]) for p in rows[6]["problems"]] == [("Lid sinds", "INVALID")]
    counts = """query($ids: [ID!]!) { nodes(ids: $ids) { ... on Group { name memberCount } } }"""
    found = (await client.data(counts, {"ids": [leden, nieuwsbrief, utrechters, both]}))["nodes"]
    assert [g["memberCount"] for g in found] == [1, 2, 1, 2]
    async with app.state.sessions() as session:
        since = sorted(
            (m.member_since.astimezone(ZONE).date().isoformat())
            for m in await session.scalars(select(Membership))
        )
    assert since == ["2024-01-15", "2025-12-31", "2025-12-31"]
    assert await membership_differences(app) == []

    undo = (await client.data(UNDO, {"j": started["job"]["id"]}))["undoImport"]
    await finished(app, client, undo["job"]["id"])
    found = (await client.data(counts, {"ids": [leden, nieuwsbrief, utrechters, both]}))["nodes"]
    assert [g["memberCount"] for g in found] == [0, 0, 0, 0]
    assert await membership_differences(app) == []


async def _refusals(
    app: Starlette, client: GraphQLClient, given: dict[str, Any]
) -> list[tuple[list[str] | None, str]]:
    errors = await refused(app, client, START, {"i": given})
    return [(e["field"], e["code"]) for e in errors]


async def test_every_refusal_of_start_import_is_clear_and_changes_nothing(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    """Missing and malformed references, columns the file lacks or maps twice, a mapping
    that could make no contact, a match field not mapped, a group that takes no members,
    two group choices, a taken name: each refused with its field, nothing written (no job,
    no group, no mapping)."""
    upload_id = await upload(http, client.token or "", LEDEN.encode())
    dynamic = await new_group_id(client, name="Utrechters", filter=CITY_IS_UTRECHT)
    await new_static_group_id(client, "Bestaand", [])
    other_upload = await upload(
        http, (await make_user(app, "Ander", "ander@example.coop", admin=True))[1], LEDEN.encode()
    )
    email = [{"column": "E-mail", "field": "EMAIL"}]
    cases: list[tuple[dict[str, Any], list[tuple[list[str] | None, str]]]] = [
        ({"uploadId": "nope", "columns": email}, [(["input", "uploadId"], "INVALID_ID")]),
        (
            {"uploadId": to_global_id("Upload", 999), "columns": email},
            [(["input", "uploadId"], "NOT_FOUND")],
        ),
        ({"uploadId": other_upload, "columns": email}, [(["input", "uploadId"], "NOT_FOUND")]),
        ({"uploadId": upload_id}, [(["input", "columns"], "REQUIRED")]),
        (
            {"uploadId": upload_id, "columns": email, "mappingName": "x"},
            [(["input", "columns"], "REQUIRED")],
        ),
        (
            {"uploadId": upload_id, "mappingName": "Onbekend"},
            [(["input", "mappingName"], "NOT_FOUND")],
        ),
        (
            {"uploadId": upload_id, "columns": [{"column": "Geboren", "field": "EMAIL"}]},
            [(["input", "columns", "0", "column"], "NOT_FOUND")],
        ),
        (
            {"uploadId": upload_id, "columns": [*email, {"column": "e-mail", "field": "CITY"}]},
            [(["input", "columns", "1", "column"], "DUPLICATE")],
        ),
        (
            {
                "uploadId": upload_id,
                "columns": [*email, {"column": "Plaats", "field": "EMAIL"}],
            },
            [(["input", "columns", "1", "field"], "DUPLICATE")],
        ),
        (
            {"uploadId": upload_id, "columns": [{"column": "Plaats", "field": "CITY"}]},
            [(["input", "columns"], "REQUIRED")],
        ),
        (
            {"uploadId": upload_id, "columns": email, "matchBy": "EXTERNAL_ID"},
            [(["input", "matchBy"], "REQUIRED")],
        ),
        (
            {"uploadId": upload_id, "columns": email, "groupId": dynamic},
            [(["input", "groupId"], "NOT_STATIC")],
        ),
        (
            {"uploadId": upload_id, "columns": email, "groupId": to_global_id("Group", 999)},
            [(["input", "groupId"], "NOT_FOUND")],
        ),
        (
            {"uploadId": upload_id, "columns": email, "groupId": "x"},
            [(["input", "groupId"], "INVALID_ID")],
        ),
        (
            {"uploadId": upload_id, "columns": email, "groupId": dynamic, "newGroupName": "N"},
            [(["input", "newGroupName"], "INVALID")],
        ),
        (
            {"uploadId": upload_id, "columns": email, "newGroupName": " bestaand "},
            [(["input", "newGroupName"], "NAME_TAKEN")],
        ),
        (
            {"uploadId": upload_id, "columns": email, "newGroupName": "x" * 201},
            [(["input", "newGroupName"], "TOO_LONG")],
        ),
        (
            {"uploadId": upload_id, "columns": email, "saveMappingAs": " "},
            [(["input", "saveMappingAs"], "REQUIRED")],
        ),
        (
            {"uploadId": upload_id, "columns": email, "sheet": "Leden", "separator": "x"},
            [(["input", "separator"], "INVALID")],
        ),
    ]
    for given, expected in cases:
        assert await _refusals(app, client, given) == expected, given


def _people(count: int, *, city: str = "Ede") -> bytes:
    rows = [f"Lid;{i};lid{i}@{city.lower()}.example.nl;{city}" for i in range(count)]
    return _csv("Voornaam;Achternaam;E-mail;Plaats", *rows)


PEOPLE_COLUMNS = [
    {"column": "Voornaam", "field": "FIRST_NAME"},
    {"column": "Achternaam", "field": "LAST_NAME"},
    {"column": "E-mail", "field": "EMAIL"},
    {"column": "Plaats", "field": "CITY"},
]


@pytest.mark.parametrize("dry_run", [True, False])
async def test_the_statements_of_an_import_do_not_grow_with_its_rows(
    app: Starlette,
    http: httpx.AsyncClient,
    client: GraphQLClient,
    statements: StatementCounter,
    dry_run: bool,
) -> None:
    """Set-based: 150 rows and 600 rows (one chunk each, into a group that a dynamic and a
    composite group read) take the same number of statements to stage and to run."""
    group = await new_static_group_id(client, "Import", [])
    await new_group_id(
        client, name="Edenaren", filter={"condition": {"field": "city", "op": "EQ", "value": "Ede"}}
    )
    await new_group_id(client, name="Samen", composedOfIds=[group])
    counted = []
    for size in (150, 600):
        upload_id = await upload(http, client.token or "", _people(size, city=f"Ede{size}"))
        started = await start(
            client, uploadId=upload_id, columns=PEOPLE_COLUMNS, groupId=group, dryRun=dry_run
        )
        with statements:
            await run_jobs(app)
        counted.append(statements.count)
        assert (await report(client, started["job"]["id"]))["created"] == size
        if not dry_run:
            await rows_name_their_contacts(app, started["job"]["id"])
    assert counted[0] == counted[1], counted


async def test_an_import_whose_worker_is_killed_resumes_without_a_contact_twice(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient, database_url: str
) -> None:
    """``kill -9`` of a real `graphql-api worker` part way: a second worker takes the job
    on after the first one's lease, and every row made its contact and membership once."""
    rows = 2_000
    group = await new_static_group_id(client, "Import", [])
    upload_id = await upload(http, client.token or "", _people(rows))
    started = await start(client, uploadId=upload_id, columns=PEOPLE_COLUMNS, groupId=group)
    job_id = decode_id(started["job"]["id"], "Job", ["id"])
    first = start_worker(database_url)
    try:
        await wait_for_job(app, job_id, lambda job: job.done >= 5 * CHUNK, 120)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(timeout=10)
    killed = await job_row(app, job_id)
    assert killed.state is JobState.RUNNING and 0 < killed.done < rows, "killed part way"
    second = start_worker(database_url)
    try:
        done = await wait_for_job(app, job_id, lambda job: job.state is not JobState.RUNNING, 180)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert (done.state, done.done, done.changed) == (JobState.SUCCEEDED, rows, rows)
    async with app.state.sessions() as session:
        emails = Counter(await session.scalars(select(Contact.email)))
        members = await session.scalar(select(func.count()).select_from(Membership))
    assert len(emails) == rows and set(emails.values()) == {1}, "each contact once"
    assert members == rows
    outcome = await report(client, started["job"]["id"])
    assert (outcome["created"], outcome["pending"], outcome["rejected"]) == (rows, 0, 0)
    await rows_name_their_contacts(app, started["job"]["id"])
    assert await membership_differences(app) == []


MAPPINGS = "{ importMappings { name columns { column field } } }"
SAVE = """
mutation($n: String!, $c: [ImportColumnInput!]!) {
  saveImportMapping(name: $n, columns: $c) {
    mapping { name columns { column field } } errors { field code message }
  }
}"""
DELETE = """
mutation($n: String!) { deleteImportMapping(name: $n) { errors { field code message } } }
"""


async def test_a_mapping_is_saved_by_name_used_replaced_and_deleted(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    saved = (await client.data(SAVE, {"n": " Leden ", "c": COLUMNS}))["saveImportMapping"]
    assert saved == {"mapping": {"name": "Leden", "columns": COLUMNS}, "errors": []}
    upload_id = await upload(http, client.token or "", LEDEN.encode())
    started = await start(client, uploadId=upload_id, mappingName="LEDEN", dryRun=True)
    assert started["errors"] == []
    await finished(app, client, started["job"]["id"])
    assert (await report(client, started["job"]["id"]))["created"] == 2

    await start(
        client,
        uploadId=upload_id,
        columns=COLUMNS[3:],
        saveMappingAs="leden",
        dryRun=True,
    )
    assert (await client.data(MAPPINGS))["importMappings"] == [
        {"name": "Leden", "columns": COLUMNS[3:]}
    ]
    bad = [{"column": "E-mail", "field": "EMAIL"}, {"column": "e-mail", "field": "CITY"}]
    for name, columns, expected in [
        ("", COLUMNS, [(["name"], "REQUIRED")]),
        ("x" * 201, COLUMNS, [(["name"], "TOO_LONG")]),
        ("Dubbel", bad, [(["columns", "1", "column"], "DUPLICATE")]),
        ("Leeg", [], [(["columns"], "REQUIRED")]),
    ]:
        errors = await refused(app, client, SAVE, {"n": name, "c": columns})
        assert [(e["field"], e["code"]) for e in errors] == expected, name
    assert await refused(app, client, DELETE, {"n": "Onbekend"}) == [
        {"field": ["name"], "code": "NOT_FOUND", "message": "No mapping has this name."}
    ]
    assert (await client.data(DELETE, {"n": "LEDEN"}))["deleteImportMapping"]["errors"] == []
    assert (await client.data(MAPPINGS))["importMappings"] == []


async def test_importing_needs_its_permissions_and_managers_have_them(
    app: Starlette, http: httpx.AsyncClient
) -> None:
    """A viewer may neither upload nor import nor read mappings; a manager may do all of
    it; a role with contacts.import alone cannot make contacts through it."""
    _, viewer = await make_user(app, "Kijker", "kijker@example.coop", role="viewer")
    _, manager = await make_user(app, "Beheer", "beheer@example.coop", role="manager")
    refused_upload = await http.post("/uploads", content=LEDEN.encode(), headers=_auth(viewer))
    assert refused_upload.status_code == 403
    assert refused_upload.json()["errors"][0]["code"] == "FORBIDDEN"
    viewing = GraphQLClient(http, viewer)
    denied = await viewing.execute(MAPPINGS)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    managing = GraphQLClient(http, manager)
    upload_id = await upload(http, manager, LEDEN.encode())
    assert (await managing.data(MAPPINGS))["importMappings"] == []
    errors = await refused(app, viewing, START, {"i": {"uploadId": upload_id, "columns": COLUMNS}})
    assert [e["code"] for e in errors] == ["FORBIDDEN"]
    started = await start(managing, uploadId=upload_id, columns=COLUMNS, newGroupName="Nieuw")
    assert started["errors"] == []
    assert (await finished(app, managing, started["job"]["id"]))["state"] == "SUCCEEDED"
    assert (await report(managing, started["job"]["id"]))["created"] == 2
    # Neither a viewer nor another manager reads the manager's import, nor its error file.
    seen = await viewing.execute(REPORT, {"j": started["job"]["id"]})
    assert seen["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    _, colleague = await make_user(app, "Collega", "collega@example.coop", role="manager")
    hidden = await GraphQLClient(http, colleague).data(REPORT, {"j": started["job"]["id"]})
    assert hidden == {"importReport": None}
    job_pk = decode_id(started["job"]["id"], "Job", ["id"])
    denied_file = await http.get(f"/imports/{job_pk}/errors.csv", headers=_auth(viewer))
    assert denied_file.status_code == 403
    hidden_file = await http.get(f"/imports/{job_pk}/errors.csv", headers=_auth(colleague))
    assert hidden_file.status_code == 404


async def test_undo_keeps_what_changed_since_and_says_why_and_runs_once(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    await new_contact_id(client, firstName="Bram", lastName="Bakker", email="bram@example.nl")
    upload_id = await upload(http, client.token or "", LEDEN.encode())
    dry = await start(client, uploadId=upload_id, columns=COLUMNS, dryRun=True)
    started = await start(client, uploadId=upload_id, columns=COLUMNS, newGroupName="Import")
    still_running = await refused(app, client, UNDO, {"j": started["job"]["id"]})
    assert [e["code"] for e in still_running] == ["CONFLICT"]
    await run_jobs(app)
    rows = {r["row"]: r for r in (await report(client, started["job"]["id"]))["rows"]}
    assert (rows[2]["status"], rows[3]["status"]) == ("CREATED", "SKIPPED")
    anna = rows[2]["contactId"]
    other = await new_static_group_id(client, "Later", [anna])

    undo = (await client.data(UNDO, {"j": started["job"]["id"]}))["undoImport"]
    assert undo["errors"] == []
    await finished(app, client, undo["job"]["id"])
    rows = {r["row"]: r for r in (await report(client, started["job"]["id"]))["rows"]}
    assert rows[2]["undo"] == "kept: the contact was added to a group after the import"
    assert rows[3]["undo"].startswith("kept: the contact existed before the import")
    async with app.state.sessions() as session:
        names = sorted(await session.scalars(select(Contact.first_name)))
        members = await session.scalar(select(func.count()).select_from(Membership))
    assert names == ["Anna", "Bram"] and members == 1, "only Later's member stays"
    assert other

    for job, code in [
        (started["job"]["id"], "DUPLICATE"),
        (dry["job"]["id"], "INVALID"),
        (undo["job"]["id"], "NOT_FOUND"),
        (to_global_id("Job", 999), "NOT_FOUND"),
        ("x", "INVALID_ID"),
    ]:
        errors = await refused(app, client, UNDO, {"j": job})
        assert [e["code"] for e in errors] == [code], job


async def test_every_import_is_in_the_audit_log_with_its_rows(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    upload_id = await upload(http, client.token or "", LEDEN.encode())
    started = await start(client, uploadId=upload_id, columns=COLUMNS)
    await run_jobs(app)
    await client.data(UNDO, {"j": started["job"]["id"]})
    async with app.state.sessions() as session:
        entries = [
            (e.action, e.subject, e.details.get("rows"))
            for e in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            if e.action.startswith("import.")
        ]
    assert entries == [
        ("import.start", "leden.csv", None),
        ("import.read", "leden.csv", 3),
        ("import.undo", "leden.csv", None),
    ]


ERASE = """mutation($c: ID!) { eraseContact(contactId: $c) { errors { code } } }"""


async def test_the_file_as_it_was_goes_with_an_erasure_and_a_week_after_the_import(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    """An import keeps the rows as the file had them (names, addresses) for its report and
    error file: an erased contact's go at once, everyone's a week after the import ends,
    as its upload does; what became of each row stays, and the undo still works."""
    upload_id = await upload(http, client.token or "", LEDEN.encode())
    started = await start(client, uploadId=upload_id, columns=COLUMNS)
    await run_jobs(app)
    rows = (await report(client, started["job"]["id"]))["rows"]
    anna = next(r["contactId"] for r in rows if r["row"] == 2)
    assert (await client.data(ERASE, {"c": anna}))["eraseContact"]["errors"] == []

    async def cells() -> dict[int, int]:
        async with app.state.sessions() as session:
            found = await session.execute(select(ImportRow.row, ImportRow.cells))
            return {row: len(kept) for row, kept in found}

    assert await cells() == {2: 0, 3: 5, 4: 5}
    job_pk = decode_id(started["job"]["id"], "Job", ["id"])
    async with app.state.sessions() as session, session.begin():
        await session.execute(
            update(Job).where(Job.id == job_pk).values(finished_at=utcnow() - timedelta(days=8))
        )
    await upload(http, client.token or "", LEDEN.encode(), name="later.csv")
    assert await cells() == {2: 0, 3: 0, 4: 0}
    outcome = await report(client, started["job"]["id"])
    assert (outcome["created"], outcome["rejected"]) == (2, 1)
    undo = (await client.data(UNDO, {"j": started["job"]["id"]}))["undoImport"]
    await finished(app, client, undo["job"]["id"])
    assert [r["undo"] for r in (await report(client, started["job"]["id"], "CREATED"))["rows"]] == [
        "kept: the contact was changed after the import",
        "removed",
    ]


async def test_a_kind_in_dutch_makes_an_organisation_and_a_wrong_one_rejects_the_row(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
) -> None:
    file = _csv(
        "Soort;Naam;E-mail",
        "Organisatie;Coöperatie Ons Dorp;info@onsdorp.nl",
        "persoon;Jansen;jansen@example.nl",
        "vereniging;Club;club@example.nl",
    )
    columns = [
        {"column": "Soort", "field": "KIND"},
        {"column": "Naam", "field": "ORGANISATION_NAME"},
        {"column": "E-mail", "field": "EMAIL"},
    ]
    started = await start(
        client, uploadId=await upload(http, client.token or "", file), columns=columns
    )
    await run_jobs(app)
    rows = {r["row"]: r for r in (await report(client, started["job"]["id"]))["rows"]}
    assert (rows[2]["status"], rows[3]["status"], rows[4]["status"]) == (
        "CREATED",
        "REJECTED",
        "REJECTED",
    )
    # A person needs a name of a person: an organisation's name alone is not one.
    assert rows[3]["problems"][0]["code"] == "REQUIRED"
    assert (rows[4]["problems"][0]["column"], rows[4]["problems"][0]["code"]) == (
        "Soort",
        "INVALID",
    )
    made = await client.data(
        "query($id: ID!) { contact(id: $id) { kind displayName } }", {"id": rows[2]["contactId"]}
    )
    assert made == {"contact": {"kind": "ORGANISATION", "displayName": "Coöperatie Ons Dorp"}}


CANCEL = "mutation($j: ID!) { cancelJob(id: $j) { errors { code } } }"


async def test_a_cancelled_import_keeps_its_chunks_says_what_is_pending_and_undoes(
    app_factory: Any,
) -> None:
    app = app_factory(job_chunk_size=2)
    _, token = await make_user(app, "Beheer", "beheer@example.coop", admin=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        client = GraphQLClient(http, token)
        upload_id = await upload(http, token, _people(5))
        started = await start(client, uploadId=upload_id, columns=PEOPLE_COLUMNS)
        runner = make_job_runner(app, job_chunk_size=2)
        job_pk = await runner.claim()
        assert job_pk is not None
        assert await runner.step(job_pk)  # the file read: rows staged
        assert await runner.step(job_pk)  # the first chunk: rows 2 and 3
        assert (await client.data(CANCEL, {"j": started["job"]["id"]}))["cancelJob"]["errors"] == []
        assert not await runner.step(job_pk)
        job = (await client.data(JOB, {"j": started["job"]["id"]}))["job"]
        assert (job["state"], job["done"], job["total"]) == ("CANCELLED", 2, 5)
        outcome = await report(client, started["job"]["id"])
        assert (outcome["created"], outcome["pending"]) == (2, 3)
        assert await contact_count(app) == 2
        undo = (await client.data(UNDO, {"j": started["job"]["id"]}))["undoImport"]
        await finished(app, client, undo["job"]["id"])
        assert await contact_count(app) == 0
