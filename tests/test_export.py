"""Exports (docs/export.md): a group's members and the contacts x groups report, as CSV
or XLSX, streamed over real HTTP (ASGI, and a real ``serve`` for the download links),
read in pages whatever their size, refused without ``contacts.export``, audited, never a
formula, and read back by LibreOffice as they were meant."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import secrets
import socket
import subprocess
import tempfile
import zipfile
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import httpx
import pytest
from python_calamine import CalamineWorkbook
from sqlalchemy import event, insert, select, update
from starlette.applications import Starlette

from graphql_api.contacts.models import Contact
from graphql_api.graphql_base.relay import parse_global_id, to_global_id
from graphql_api.groups import export as export_module
from graphql_api.groups.export import (
    LINK_PATH,
    MAX_REPORT_GROUPS,
    PAGE_SIZE,
    XLSX_MAX_ROWS,
    ExportLink,
)
from graphql_api.groups.membership_writes import add_members as add_members_in_domain
from graphql_api.groups.models import Group, Membership, MembershipSource
from graphql_api.kernel.access import SYSTEM
from graphql_api.kernel.db import utcnow
from graphql_api.testing import (
    GraphQLClient,
    StatementCounter,
    cli,
    debian_program,
    make_user,
    new_contact_id,
    new_group_id,
    new_static_group_id,
    serving,
)
from graphql_api.users.models import AuditEntry, User
from graphql_api.users.staff_roles import role_named
from graphql_api.web.exports import SheetFull, xlsx_chunks

MEMBERS = "/exports/group-members"
REPORT = "/exports/group-report"
LINK = """
mutation($g: ID!, $f: [String!], $x: ExportFormat!) {
  exportGroupMembers(groupId: $g, fields: $f, format: $x) {
    url expiresAt errors { field code message }
  }
}"""
REPORT_LINK = """
mutation($g: [ID!]!, $s: String!) {
  exportGroupReport(groupIds: $g, separator: $s) { url expiresAt errors { field code } }
}"""
GROUP = to_global_id("Group", 1)
DANGEROUS = ['=HYPERLINK("http://x")', "+31 6 12345678", "-2+3", "@SUM(A1)", "\tTab", "\rCR"]


def _pk(global_id: str) -> int:
    parsed = parse_global_id(global_id)
    assert parsed is not None
    return parsed[1]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _csv(body: bytes, separator: str = ";") -> list[list[str]]:
    assert body.startswith("\ufeff".encode()), body[:10]
    return list(csv.reader(io.StringIO(body.decode()[1:]), delimiter=separator))


def _xlsx(body: bytes) -> list[list[Any]]:
    return CalamineWorkbook.from_filelike(io.BytesIO(body)).get_sheet_by_index(0).to_python()


MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _quoted_cells(body: bytes) -> set[str]:
    """The cells of an XLSX's sheet whose format has ``quotePrefix``: text to a
    spreadsheet, never a formula."""
    with zipfile.ZipFile(io.BytesIO(body)) as book:
        styles = ElementTree.fromstring(book.read("xl/styles.xml"))
        sheet = ElementTree.fromstring(book.read("xl/worksheets/sheet1.xml"))
    formats = styles.find(f"{MAIN}cellXfs")
    assert formats is not None
    quoted = {str(i) for i, xf in enumerate(formats) if xf.get("quotePrefix") == "1"}
    return {c.get("r", "") for c in sheet.iter(f"{MAIN}c") if c.get("s", "0") in quoted}


def _today(app: Starlette) -> Any:
    return datetime.now(ZoneInfo(app.state.settings.timezone)).date()


@pytest.fixture
async def people(client: GraphQLClient) -> list[str]:
    """Three contacts with Dutch letters and a postal code with a leading zero."""
    return [
        await new_contact_id(
            client, firstName="Zoë", lastName="IJsselstein", postalCode="0123 AB", city="Ée"
        ),
        await new_contact_id(client, firstName="Jan-Willem", lastName="de Vries"),
        await new_contact_id(client, organisationName="Coöperatie Ons Dorp", kind="ORGANISATION"),
    ]


async def _download(http: httpx.AsyncClient, path: str, token: str, **query: str) -> bytes:
    """A download read as a stream, as a browser reads it; it must succeed."""
    async with http.stream("GET", path, params=query, headers=_auth(token)) as response:
        assert response.status_code == 200, await response.aread()
        return b"".join([chunk async for chunk in response.aiter_bytes()])


async def test_a_static_groups_members_as_csv_with_since_source_and_who_added_them(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient, people: list[str]
):
    group = await new_static_group_id(client, "Bewoners", people[:2])
    body = await _download(
        http,
        MEMBERS,
        client.token or "",
        groupId=group,
        fields="id,firstName,lastName,postalCode,memberSince,source,addedBy",
    )
    rows = _csv(body)
    assert rows[0] == [
        "id",
        "firstName",
        "lastName",
        "postalCode",
        "memberSince",
        "source",
        "addedBy",
    ]
    assert [r[:4] for r in rows[1:]] == [
        [str(_pk(people[0])), "Zoë", "IJsselstein", "0123 AB"],
        [str(_pk(people[1])), "Jan-Willem", "de Vries", ""],
    ]
    async with app.state.sessions() as session:
        stored = await session.scalar(
            select(Membership.member_since).where(Membership.contact_id == _pk(people[0]))
        )
    assert stored is not None
    local = stored.astimezone(ZoneInfo(app.state.settings.timezone))
    assert rows[1][4] == local.strftime("%Y-%m-%d %H:%M:%S")
    assert [r[5:] for r in rows[1:]] == [["BULK", "Johannes Frölich"]] * 2
    async with app.state.sessions() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action.like("export.%")))
    assert entry is not None
    assert (entry.action, entry.subject) == ("export.members", "Bewoners")
    assert entry.details["rows"] == 2 and entry.details["complete"] is True


async def test_a_derived_groups_members_come_from_its_rule_with_a_comma(
    http: httpx.AsyncClient, client: GraphQLClient, people: list[str]
):
    static = await new_static_group_id(client, "Bestuur", people[1:])
    composite = await new_group_id(client, name="Bestuur samengesteld", composedOfIds=[static])
    body = await _download(
        http,
        MEMBERS,
        client.token or "",
        groupId=composite,
        fields="organisationName,source,addedBy",
        separator=",",
    )
    assert _csv(body, ",") == [
        ["organisationName", "source", "addedBy"],
        ["", "DERIVED", ""],
        ["Coöperatie Ons Dorp", "DERIVED", ""],
    ]


async def test_the_report_has_a_column_per_group_holding_the_day_of_joining(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient, people: list[str]
):
    first = await new_static_group_id(client, "Koor", people[:1])
    second = await new_static_group_id(client, "Tuin", people[1:])
    body = await _download(
        http,
        REPORT,
        client.token or "",
        groupIds=f"{first},{second}",
        fields="lastName",
        format="xlsx",
    )
    today = _today(app)
    rows = _xlsx(body)
    assert rows[0] == ["lastName", "Koor", "Tuin"]
    joined = [[cell.date() if isinstance(cell, datetime) else cell for cell in r] for r in rows[1:]]
    assert joined == [["IJsselstein", today, ""], ["de Vries", "", today], ["", "", today]]


async def test_a_group_named_twice_in_a_report_has_one_column(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient, people: list[str]
):
    first = await new_static_group_id(client, "Koor", people[:1])
    second = await new_static_group_id(client, "Tuin", people[1:])
    body = await _download(
        http, REPORT, client.token or "", groupIds=f"{first},{second},{first}", fields="lastName"
    )
    today = _today(app).isoformat()
    assert _csv(body) == [
        ["lastName", "Koor", "Tuin"],
        ["IJsselstein", today, ""],
        ["de Vries", "", today],
        ["", "", today],
    ]


async def test_cells_that_could_be_formulas_are_text_in_csv_and_xlsx(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
):
    # Straight into the table: the API already trims a leading tab or CR from input.
    async with app.state.sessions() as session, session.begin():
        ids = await session.scalars(
            insert(Contact).returning(Contact.id), [{"last_name": text} for text in DANGEROUS]
        )
        members = [to_global_id("Contact", i) for i in ids]
    group = await new_static_group_id(client, "Gevaarlijk", members)
    token = client.token or ""
    as_csv = _csv(await _download(http, MEMBERS, token, groupId=group, fields="lastName"))
    xlsx = await _download(http, MEMBERS, token, groupId=group, fields="lastName", format="xlsx")
    # A CSV has no other way to say "text" than a quote; an XLSX keeps the value as it
    # is and marks its cell as text.
    assert as_csv == [["lastName"], *(["'" + text] for text in DANGEROUS)]
    assert _xlsx(xlsx) == [["lastName"], *([text] for text in DANGEROUS)]
    assert _quoted_cells(xlsx) == {f"A{row}" for row in range(2, 2 + len(DANGEROUS))}
    # A group's name heads a report's column: escaped as well.
    await client.data(
        'mutation($id: ID!) { updateGroup(id: $id, input: {name: "=1+1"}) { errors { code } } }',
        {"id": group},
    )
    report = _csv(await _download(http, REPORT, token, groupIds=group, fields="lastName"))
    assert report[0] == ["lastName", "'=1+1"]
    assert [r[0] for r in report[1:]] == [r[0] for r in as_csv[1:]]
    report_xlsx = await _download(
        http, REPORT, token, groupIds=group, fields="lastName", format="xlsx"
    )
    assert _xlsx(report_xlsx)[0] == ["lastName", "=1+1"]
    assert {"A1", "B1"} & _quoted_cells(report_xlsx) == {"B1"}


async def test_statements_grow_per_page_not_per_row(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient, statements: StatementCounter
):
    group = await new_group_id(client, name="Groot")
    async with app.state.sessions() as session, session.begin():
        ids = list(
            await session.scalars(
                insert(Contact).returning(Contact.id),
                [{"last_name": f"Lid {n}"} for n in range(PAGE_SIZE * 2 + 500)],
            )
        )
        await add_members_in_domain(session, SYSTEM, _pk(group), ids, MembershipSource.BULK)
    report_group = await new_static_group_id(client, "Klein", [to_global_id("Contact", ids[0])])
    token = client.token or ""
    counts = {}
    for path, query in (
        (MEMBERS, {"groupId": group}),
        (REPORT, {"groupIds": f"{group},{report_group}"}),
    ):
        with statements:
            body = await _download(http, path, token, **query)
        assert len(_csv(body)) == 1 + len(ids)
        reads = [s for s in statements.statements if "LIMIT" in s.upper()]
        counts[path] = (statements.count, len(reads))
    # Three pages: a statement each, two for the report; the rest is a constant few.
    assert counts[MEMBERS][1] == 3 and counts[MEMBERS][0] <= 3 + 6, counts
    assert counts[REPORT][1] == 3 and counts[REPORT][0] <= 6 + 6, counts
    assert PAGE_SIZE <= 1000


async def test_who_may_export(app: Starlette, http: httpx.AsyncClient, client: GraphQLClient):
    group = await new_static_group_id(client, "Leden", [])
    _, viewer = await make_user(app, "Vera", "vera@example.coop", role="viewer")
    _, manager = await make_user(app, "Mark", "mark@example.coop", role="manager")
    anonymous = await http.get(MEMBERS, params={"groupId": group})
    assert anonymous.status_code == 401
    refused = await http.get(MEMBERS, params={"groupId": group}, headers=_auth(viewer))
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "FORBIDDEN"
    assert "contacts.export" in refused.json()["errors"][0]["message"]
    assert _csv(await _download(http, MEMBERS, manager, groupId=group)) == [
        ["id", "firstName", "lastName", "organisationName", "email"]
    ]
    viewers_link = await GraphQLClient(http, viewer).data(LINK, {"g": group, "f": None, "x": "CSV"})
    assert viewers_link["exportGroupMembers"]["url"] is None
    assert viewers_link["exportGroupMembers"]["errors"][0]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("granted", "missing"),
    [(["contacts.export"], "contacts.view"), (["contacts.export", "contacts.view"], "groups.view")],
)
async def test_an_export_needs_the_permissions_to_read_contacts_and_groups_too(
    http: httpx.AsyncClient, client: GraphQLClient, granted: list[str], missing: str
):
    group = await new_static_group_id(client, "Leden", [])
    made = await client.data(
        'mutation($p: [String!]!) { createApiToken(input: {name: "export", permissions: $p})'
        " { secret errors { code } } }",
        {"p": granted},
    )
    narrowed = made["createApiToken"]["secret"]
    refused = await http.get(MEMBERS, params={"groupId": group}, headers=_auth(narrowed))
    assert refused.status_code == 403
    [error] = refused.json()["errors"]
    assert error["code"] == "FORBIDDEN" and f"'{missing}'" in error["message"], error
    link = await GraphQLClient(http, narrowed).data(LINK, {"g": group, "f": None, "x": "CSV"})
    assert link["exportGroupMembers"]["url"] is None
    assert missing in link["exportGroupMembers"]["errors"][0]["message"]


@pytest.mark.parametrize(
    ("path", "query", "status", "code", "field"),
    [
        (
            MEMBERS,
            {"groupId": to_global_id("Group", 999_999)},
            404,
            "NOT_FOUND",
            ["group_ids", "0"],
        ),
        (MEMBERS, {"groupId": "nonsense"}, 400, "INVALID_ID", ["group_ids", "0"]),
        (MEMBERS, {"fields": "lastName,shoeSize"}, 400, "INVALID", ["fields", "1"]),
        (MEMBERS, {"fields": ""}, 400, "INVALID", ["fields"]),
        (REPORT, {"fields": "memberSince"}, 400, "INVALID", ["fields", "0"]),
        (MEMBERS, {"separator": "|"}, 400, "INVALID", ["separator"]),
        (MEMBERS, {"format": "ods"}, 400, "INVALID", ["format"]),
        (REPORT, {"groupIds": ""}, 400, "INVALID", ["group_ids"]),
        (MEMBERS, {"groupId": f"{GROUP},{GROUP}"}, 400, "INVALID", ["group_ids"]),
    ],
)
async def test_bad_requests_are_refused_clearly(
    http: httpx.AsyncClient,
    client: GraphQLClient,
    path: str,
    query: dict[str, str],
    status: int,
    code: str,
    field: list[str],
):
    group = await new_static_group_id(client, "Leden", [])
    key = "groupId" if path == MEMBERS else "groupIds"
    response = await http.get(path, params={key: group, **query}, headers=_auth(client.token or ""))
    assert response.status_code == status, response.text
    errors = response.json()["errors"]
    assert [(e["code"], e["field"]) for e in errors] == [(code, field)], errors
    assert errors[0]["message"]


async def test_a_report_of_too_many_groups_is_refused(
    http: httpx.AsyncClient, client: GraphQLClient
):
    group = await new_static_group_id(client, "Leden", [])
    many = [group] * (MAX_REPORT_GROUPS + 1)
    response = await http.get(
        REPORT, params={"groupIds": ",".join(many)}, headers=_auth(client.token or "")
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "TOO_MANY"
    data = await client.data(REPORT_LINK, {"g": many, "s": ";"})
    assert [e["code"] for e in data["exportGroupReport"]["errors"]] == ["TOO_MANY"]
    bad = await client.data(REPORT_LINK, {"g": [group], "s": "|"})
    assert bad["exportGroupReport"]["errors"] == [{"field": ["separator"], "code": "INVALID"}]


async def test_an_xlsx_of_more_members_than_a_sheet_holds_is_refused(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
):
    group = await new_static_group_id(client, "Heel groot", [])
    async with app.state.sessions() as session, session.begin():
        # Only the kept count: a million members are not needed to be told beforehand.
        await session.execute(
            update(Group).where(Group.id == _pk(group)).values(member_count=XLSX_MAX_ROWS)
        )
    try:
        response = await http.get(
            MEMBERS, params={"groupId": group, "format": "xlsx"}, headers=_auth(client.token or "")
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == "TOO_MANY"
        assert "as CSV" in response.json()["errors"][0]["message"]
        assert _csv(await _download(http, MEMBERS, client.token or "", groupId=group)) == [
            ["id", "firstName", "lastName", "organisationName", "email"]
        ]
    finally:
        async with app.state.sessions() as session, session.begin():
            await session.execute(
                update(Group).where(Group.id == _pk(group)).values(member_count=0)
            )


async def test_an_xlsx_report_counts_a_contact_in_several_groups_once(
    http: httpx.AsyncClient,
    client: GraphQLClient,
    people: list[str],
    monkeypatch: pytest.MonkeyPatch,
):
    # A sheet of a header and three rows, rather than a million contacts.
    monkeypatch.setattr(export_module, "XLSX_MAX_ROWS", 4)
    koor = await new_static_group_id(client, "Koor", people[:2])
    tuin = await new_static_group_id(client, "Tuin", people[1:])
    token = client.token or ""
    body = await _download(
        http, REPORT, token, groupIds=f"{koor},{tuin}", fields="lastName", format="xlsx"
    )
    assert [row[0] for row in _xlsx(body)] == ["lastName", "IJsselstein", "de Vries", ""]
    fourth = await new_contact_id(client, lastName="Bakker")
    bigger = await new_static_group_id(client, "Bestuur", [fourth])
    response = await http.get(
        REPORT,
        params={"groupIds": f"{koor},{tuin},{bigger}", "format": "xlsx"},
        headers=_auth(token),
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "TOO_MANY"


async def test_a_download_link_works_once_without_a_token_on_a_real_server(
    app: Starlette, server_env: dict[str, str]
):
    # ``app`` empties the tables after the test, as after every other test here.
    made = cli(server_env, "create-user", "--name", "Els", "--email", "els@example.coop")
    assert made.returncode == 0, made.stderr
    with serving(server_env) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            staff = GraphQLClient(http, made.stdout.split()[-1])
            contact = await new_contact_id(staff, lastName="Bakker", postalCode="0800")
            group = await new_static_group_id(staff, "Linkgroep", [contact])
            payload = (
                await staff.data(LINK, {"g": group, "f": ["lastName", "postalCode"], "x": "XLSX"})
            )["exportGroupMembers"]
            assert payload["errors"] == []
            expires = datetime.fromisoformat(payload["expiresAt"])
            assert expires - datetime.now().astimezone() <= timedelta(minutes=5)
            # A browser: no Authorization header.
            assert (await http.head(payload["url"])).status_code == 405
            first = await http.get(payload["url"])
            assert first.status_code == 200, first.text
            assert first.headers["content-type"].startswith("application/vnd.openxmlformats")
            assert "attachment" in first.headers["content-disposition"]
            assert _xlsx(first.content) == [["lastName", "postalCode"], ["Bakker", "0800"]]
            # HEAD would use it up; it is refused.
            assert (await http.head(payload["url"])).status_code == 405
            again = await http.get(payload["url"])
            assert again.status_code == 410 and "used" in again.json()["errors"][0]["message"]
            tampered = await http.get(payload["url"][:-2] + "xx")
            assert tampered.status_code == 403
            assert "not valid" in tampered.json()["errors"][0]["message"]


async def _link_url(client: GraphQLClient, group: str) -> str:
    payload = (await client.data(LINK, {"g": group, "f": ["lastName"], "x": "CSV"}))[
        "exportGroupMembers"
    ]
    assert payload["errors"] == [], payload
    return payload["url"]


async def test_a_head_request_is_refused_and_uses_up_no_link(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
):
    group = await new_static_group_id(client, "Leden", [])
    url = await _link_url(client, group)
    assert (await http.head(url)).status_code == 405
    head = await http.head(MEMBERS, params={"groupId": group}, headers=_auth(client.token or ""))
    assert head.status_code == 405
    assert (await http.get(url)).status_code == 200
    async with app.state.sessions() as session:
        audited = await session.scalars(
            select(AuditEntry.action).where(AuditEntry.action.like("export.%"))
        )
        assert list(audited) == ["export.members"], "the HEADs exported nothing"


async def test_a_links_token_is_not_in_the_request_log(
    http: httpx.AsyncClient, client: GraphQLClient, caplog: pytest.LogCaptureFixture
):
    url = await _link_url(client, await new_static_group_id(client, "Leden", []))
    token = url.removeprefix(LINK_PATH)
    with caplog.at_level(logging.INFO, logger="graphql_api.requests"):
        assert (await http.get(url)).status_code == 200
    [line] = [r for r in caplog.records if r.name == "graphql_api.requests"]
    assert line.getMessage() == f"GET {LINK_PATH}… 200"
    assert line.fields["path"] == LINK_PATH + "…"  # type: ignore[attr-defined]
    assert token not in caplog.text and token not in str(line.__dict__)


async def test_a_link_opened_twice_at_once_downloads_once(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
):
    url = await _link_url(client, await new_static_group_id(client, "Leden", []))
    answers = await asyncio.gather(http.get(url), http.get(url))
    assert sorted(a.status_code for a in answers) == [200, 410], [a.text for a in answers]


async def test_expired_links_are_forgotten_when_a_link_is_opened(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
):
    group = await new_static_group_id(client, "Leden", [])
    old, fresh = [await _link_url(client, group) for _ in range(2)]
    async with app.state.sessions() as session, session.begin():
        await session.execute(
            update(ExportLink)
            .where(
                ExportLink.id
                == select(ExportLink.id).order_by(ExportLink.id).limit(1).scalar_subquery()
            )
            .values(expires_at=utcnow() - timedelta(days=2))
        )
    assert (await http.get(fresh)).status_code == 200
    async with app.state.sessions() as session:
        left = list(await session.scalars(select(ExportLink.used_at)))
    assert len(left) == 1 and left[0] is not None, "the expired link is kept"
    assert (await http.get(old)).status_code == 403


async def test_a_sheet_that_would_overflow_stops_with_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    async def pages() -> AsyncIterator[list[list[Any]]]:
        yield [["a"], ["b"]]
        yield [["c"], ["d"]]  # the group grew while it was exported

    with pytest.raises(SheetFull, match="More than 4 rows"):
        async for _ in xlsx_chunks(["name"], pages(), max_rows=4):
            pass
    assert os.listdir(tmp_path) == [], "the temporary workbook is left behind"
    chunks = [chunk async for chunk in xlsx_chunks(["name"], pages(), max_rows=5)]
    assert _xlsx(b"".join(chunks)) == [["name"], ["a"], ["b"], ["c"], ["d"]]


async def test_a_report_leaves_out_who_joined_between_its_two_reads(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
):
    async with app.state.sessions() as session, session.begin():
        first, between, last = list(
            await session.scalars(
                insert(Contact).returning(Contact.id), [{"last_name": n} for n in "ABC"]
            )
        )
    chosen = [to_global_id("Contact", i) for i in (first, last)]
    koor = await new_static_group_id(client, "Koor", chosen)
    tuin = await new_static_group_id(client, "Tuin", chosen[:1])
    joined = Membership.__table__.insert().values(
        group_id=_pk(koor), contact_id=between, source=MembershipSource.MANUAL.value
    )
    done = []

    # As a commit by another transaction between the two reads under READ COMMITTED.
    def join_between(connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        if " BETWEEN " in statement.upper() and not done:
            done.append(True)
            connection.execute(joined)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", join_between)
    try:
        body = await _download(
            http, REPORT, client.token or "", groupIds=f"{koor},{tuin}", fields="lastName"
        )
    finally:
        event.remove(engine, "before_cursor_execute", join_between)
    assert done, "the report's second read did not run"
    assert [r[0] for r in _csv(body)] == ["lastName", "A", "C"]


NOISE = ("organisation_name", "street", "city")
LEFT_HALF_WAY = PAGE_SIZE * 15
"""Members of the group a download is left half way: an XLSX of several megabytes."""


@pytest.mark.parametrize("format", ["csv", "xlsx"])
async def test_a_download_left_half_way_is_audited_as_incomplete(
    app: Starlette,
    client: GraphQLClient,
    server_env: dict[str, str],
    tmp_path: Path,
    format: str,
):
    group = await new_group_id(client, name="Groot")
    async with app.state.sessions() as session, session.begin():
        # Text that hardly compresses, so an XLSX is larger than what the sockets between
        # server and client hold (the client's receive buffer is kept small below).
        ids = await session.scalars(
            insert(Contact).returning(Contact.id),
            [
                {"last_name": f"Lid {n}", **{key: secrets.token_urlsafe(150) for key in NOISE}}
                for n in range(LEFT_HALF_WAY)
            ],
        )
        await add_members_in_domain(session, SYSTEM, _pk(group), list(ids), MembershipSource.BULK)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    with serving({**server_env, "TMPDIR": str(temporary)}) as (url, _):
        # A fixed receive buffer: Linux would grow the client's to tens of megabytes, and a
        # whole XLSX could then be handed over before the client leaves.
        small_window = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)]
        transport = httpx.AsyncHTTPTransport(socket_options=small_window)
        async with (
            httpx.AsyncClient(base_url=url, timeout=30, transport=transport) as http,
            http.stream(
                "GET",
                MEMBERS,
                params={
                    "groupId": group,
                    "fields": "lastName,organisationName,street,city",
                    "format": format,
                },
                headers=_auth(client.token or ""),
            ) as response,
        ):
            assert response.status_code == 200
            received = 0
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if received > 200_000:  # more than a page, then away
                    break
        # Written as the response ends, not whenever the garbage collector comes by.
        for _ in range(10):
            async with app.state.sessions() as session:
                entry = await session.scalar(
                    select(AuditEntry).where(AuditEntry.action == "export.members")
                )
            if entry is not None:
                break
            await asyncio.sleep(0.1)
        assert entry is not None, "no audit entry a second after the client left"
        assert os.listdir(temporary) == [], "the XLSX's temporary files are left"
    assert entry.details["complete"] is False
    assert 0 < entry.details["rows"] <= LEFT_HALF_WAY
    if format == "csv":
        assert entry.details["rows"] < LEFT_HALF_WAY


async def test_an_expired_link_is_gone_and_a_demoted_users_link_is_refused(
    app: Starlette, http: httpx.AsyncClient, client: GraphQLClient
):
    group = await new_static_group_id(client, "Leden", [])
    manager_id, token = await make_user(app, "Mark", "mark@example.coop", role="manager")
    manager = GraphQLClient(http, token)
    links = [
        (await user.data(LINK, {"g": group, "f": ["email"], "x": "CSV"}))["exportGroupMembers"]
        for user in (client, manager)
    ]
    async with app.state.sessions() as session, session.begin():
        await session.execute(
            update(ExportLink)
            .where(ExportLink.user_id != manager_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        viewer = await role_named(session, "viewer")
        assert viewer is not None
        await session.execute(update(User).where(User.id == manager_id).values(role_id=viewer.id))
    expired = await http.get(links[0]["url"])
    assert expired.status_code == 410
    assert "expired" in expired.json()["errors"][0]["message"]
    demoted = await http.get(links[1]["url"])
    assert demoted.status_code == 403
    assert demoted.json()["errors"][0]["code"] == "FORBIDDEN"


# LibreOffice reads what we write -----------------------------------------------------


def _soffice() -> str:
    return debian_program("soffice", "libreoffice-calc-nogui")


def _converted(source: Path, to: str, *options: str) -> Path:
    """``source`` opened by LibreOffice and saved as ``to`` beside it, in a profile of its own."""
    folder = source.parent / "out"
    done = subprocess.run(
        [
            _soffice(),
            f"-env:UserInstallation=file://{source.parent}/profile",
            "--headless",
            *options,
            "--convert-to",
            to,
            "--outdir",
            str(folder),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return folder / (source.stem + "." + to.split(":")[0])


async def test_libreoffice_reads_our_csv_and_xlsx_as_written(
    app: Starlette,
    http: httpx.AsyncClient,
    client: GraphQLClient,
    people: list[str],
    tmp_path: Path,
):
    _soffice()
    formulas = await new_contact_id(client, firstName="+31 6 12345678", lastName="=2+3")
    group = await new_static_group_id(client, "Dorp", [*people, formulas])
    token = client.token or ""
    fields = "firstName,lastName,organisationName,postalCode,city"
    expected = [
        ["firstName", "lastName", "organisationName", "postalCode", "city"],
        ["Zoë", "IJsselstein", "", "0123 AB", "Ée"],
        ["Jan-Willem", "de Vries", "", "", ""],
        ["", "", "Coöperatie Ons Dorp", "", ""],
        ["'+31 6 12345678", "'=2+3", "", "", ""],
    ]
    ours = tmp_path / "csv" / "leden.csv"
    ours.parent.mkdir()
    ours.write_bytes(await _download(http, MEMBERS, token, groupId=group, fields=fields))
    # Separator ;, quote ", UTF-8, from line 1, quoted fields as text (so 0123 stays).
    read = _converted(ours, "xlsx", "--infilter=CSV:59,34,76,1,,1043,true")
    assert CalamineWorkbook.from_path(str(read)).get_sheet_by_index(0).to_python() == expected

    ours = tmp_path / "xlsx" / "leden.xlsx"
    ours.parent.mkdir()
    ours.write_bytes(
        await _download(
            http, MEMBERS, token, groupId=group, fields=fields + ",memberSince", format="xlsx"
        )
    )
    rows = CalamineWorkbook.from_path(str(_converted(ours, "ods"))).get_sheet_by_index(0)
    values = rows.to_python()
    # The values as they are, as text, not formulas nor their results.
    assert [r[:5] for r in values] == [
        *expected[:-1],
        ["+31 6 12345678", "=2+3", "", "", ""],
    ]
    assert all(isinstance(r[5], datetime) for r in values[1:]), values
    assert {r[5].date() for r in values[1:]} == {_today(app)}
