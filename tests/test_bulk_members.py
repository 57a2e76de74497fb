"""Lists of members: enumerated or named (``from: {groupId | filter}``), changed in the
request when they fit and checked at the edge either way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from graphql_api.graphql_base.relay import decode_id
from graphql_api.groups.changes import MembersAdded
from graphql_api.kernel.errors import Problem
from graphql_api.notifications.models import OutboxEvent
from graphql_api.plugin import hookimpl
from graphql_api.testing import (
    GraphQLClient,
    add_members,
    make_job_runner,
    make_user,
    membership_differences,
    new_contact_ids,
    new_group_id,
    new_static_group_id,
    refused,
    run_jobs,
)

INLINE_LIMIT = 3
CHUNK = 2


@pytest.fixture
def app(app_factory: Any) -> Starlette:
    """Lists of up to three contacts are changed in the request; longer ones are jobs of
    chunks of two; a call names at most six ids."""
    return app_factory(bulk_inline_limit=INLINE_LIMIT, job_chunk_size=CHUNK, max_ids_per_call=6)


class RefuseContacts:
    """A plugin rule: these contacts may not join any group."""

    def __init__(self) -> None:
        self.refused: set[int] = set()

    @hookimpl
    def validate_change(self, session: Any, change: Any, settings: Any) -> list[Problem]:
        if not isinstance(change, MembersAdded):
            return []
        return [
            Problem(("contact_ids", str(c)), "NOT_EDITABLE", f"Lid {c - 1} may not join.")
            for c in change.contact_ids
            if c in self.refused
        ]


@contextlib.asynccontextmanager
async def connected(app: Starlette) -> AsyncIterator[GraphQLClient]:
    """A client of ``app`` acting as a new admin."""
    _, token = await make_user(app, "Beheerder", "beheer@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http, token)


CHANGE = """
mutation($groupId: ID!, $contactIds: [ID!], $from: MemberListInput, $remove: Boolean!) {
  add: addGroupMembers(groupId: $groupId, contactIds: $contactIds, from: $from)
    @skip(if: $remove) {
    changedCount job { id } memberships { contact { displayName } }
    group { memberCount } errors { field code message }
  }
  remove: removeGroupMembers(groupId: $groupId, contactIds: $contactIds, from: $from)
    @include(if: $remove) {
    changedCount job { id } memberships { contact { displayName } }
    group { memberCount } errors { field code message }
  }
}"""
MEMBERS = """query($id: ID!) { group(id: $id) {
  memberCount members(first: 100) { nodes { lastName } }
  history(first: 100) { edges { node { action source contact { lastName } } } } } }"""
DERIVED = """query($id: ID!) { group(id: $id) {
  memberCount members(first: 100) { nodes { lastName } } } }"""


def postal(prefix: str) -> dict[str, Any]:
    return {"condition": {"field": "postalCode", "op": "STARTS_WITH", "value": prefix}}


def in_1011_and(group_id: str) -> dict[str, Any]:
    """A filter: postal area 1011, and a member of ``group_id``."""
    member = {"condition": {"field": "memberOf", "op": "EQ", "value": group_id}}
    return {"all": [postal("1011"), member]}


async def change(
    client: GraphQLClient, group_id: str, *, remove: bool = False, **members: Any
) -> dict[str, Any]:
    variables = {"groupId": group_id, "remove": remove, "contactIds": None, "from": None}
    data = await client.data(CHANGE, {**variables, **members})
    return data["remove" if remove else "add"]


async def last_names(client: GraphQLClient, group_id: str) -> list[str]:
    group = (await client.data(MEMBERS, {"id": group_id}))["group"]
    return sorted(n["lastName"] for n in group["members"]["nodes"])


async def people(client: GraphQLClient) -> dict[str, str]:
    """Five contacts, three of them in postal area 1011."""
    ids = {}
    for name, code in (
        ("Aal", "1011AA"),
        ("Bos", "1011BB"),
        ("Cok", "2022CC"),
        ("Dam", "1011DD"),
        ("Eck", "3033EE"),
    ):
        [ids[name]] = await new_contact_ids(client, name, postalCode=code)
    return ids


async def test_from_a_filter_adds_everyone_it_matches_now(client: GraphQLClient):
    ids = await people(client)
    target = await new_group_id(client, name="Buurt 1011")
    payload = await change(client, target, **{"from": {"filter": postal("1011")}})
    assert payload["errors"] == []
    assert payload["job"] is None, "three contacts fit in the request"
    assert payload["changedCount"] == 3
    assert sorted(m["contact"]["displayName"] for m in payload["memberships"]) == [
        "Aal",
        "Bos",
        "Dam",
    ]
    assert await last_names(client, target) == ["Aal", "Bos", "Dam"]
    history = (await client.data(MEMBERS, {"id": target}))["group"]["history"]["edges"]
    assert {(e["node"]["action"], e["node"]["source"]) for e in history} == {("ADDED", "BULK")}
    assert ids


async def test_from_a_group_adds_and_removes_its_members(client: GraphQLClient):
    ids = await people(client)
    source = await new_static_group_id(client, "Avond", [ids["Aal"], ids["Cok"]])
    dynamic = await new_group_id(client, name="1011", filter=postal("1011"))
    target = await new_group_id(client, name="Leden 2025")
    await add_members(client, target, [ids["Eck"]])

    added = await change(client, target, **{"from": {"groupId": source}})
    assert (added["errors"], added["changedCount"]) == ([], 2)
    added = await change(client, target, **{"from": {"groupId": dynamic}})
    assert added["changedCount"] == 2, "Aal was in already; Bos and Dam came in"
    assert await last_names(client, target) == ["Aal", "Bos", "Cok", "Dam", "Eck"]

    removed = await change(client, target, remove=True, **{"from": {"groupId": dynamic}})
    assert (removed["errors"], removed["changedCount"]) == ([], 3)
    assert removed["memberships"] == []
    assert removed["group"]["memberCount"] == 2
    assert await last_names(client, target) == ["Cok", "Eck"]


async def test_a_named_list_flows_on_to_the_groups_reading_the_target(client: GraphQLClient):
    ids = await people(client)
    target = await new_group_id(client, name="Vrijwilligers")
    reader = await new_group_id(client, name="Actief", composedOfIds=[target])
    dynamic = await new_group_id(
        client,
        name="Actief in 1011",
        filter=in_1011_and(reader),
    )
    await change(client, target, **{"from": {"filter": postal("10")}})
    derived = (await client.data(DERIVED, {"id": dynamic}))["group"]
    assert derived["memberCount"] == 3
    await change(client, target, remove=True, contactIds=[ids["Bos"]])
    derived = (await client.data(DERIVED, {"id": dynamic}))["group"]
    assert sorted(n["lastName"] for n in derived["members"]["nodes"]) == ["Aal", "Dam"]


async def test_bad_lists_are_refused_and_change_nothing(app: Starlette, client: GraphQLClient):
    ids = await people(client)
    target = await new_group_id(client, name="Doel")
    dynamic = await new_group_id(client, name="1011", filter=postal("1011"))
    contact = ids["Aal"]
    cases: list[tuple[dict[str, Any], list[str], str]] = [
        ({}, ["contactIds"], "REQUIRED"),
        ({"contactIds": [contact], "from": {"groupId": dynamic}}, ["contactIds"], "REQUIRED"),
        ({"from": {}}, ["from"], "REQUIRED"),
        ({"from": {"groupId": dynamic, "filter": postal("1")}}, ["from"], "REQUIRED"),
        ({"from": {"groupId": contact}}, ["from", "groupId"], "INVALID_ID"),
        ({"from": {"groupId": "R3JvdXA6OTk5OTk="}}, ["from", "groupId"], "NOT_FOUND"),
        (
            {"from": {"filter": {"condition": {"field": "shoeSize", "op": "EQ", "value": "4"}}}},
            ["from", "filter", "condition", "field"],
            "INVALID",
        ),
        (
            {"from": {"filter": {"all": [postal("1"), postal("2")], "not": postal("3")}}},
            ["from", "filter"],
            "INVALID",
        ),
        ({"contactIds": []}, ["contactIds"], "REQUIRED"),
        ({"contactIds": [target]}, ["contactIds", "0"], "INVALID_ID"),
    ]
    for remove in (False, True):
        for members, field, code in cases:
            variables = {"groupId": target, "remove": remove, "contactIds": None, "from": None}
            errors = await refused(app, client, CHANGE, {**variables, **members})
            assert [(e["field"][: len(field)], e["code"]) for e in errors][:1] == [(field, code)], (
                members,
                errors,
            )
        variables = {"groupId": dynamic, "remove": remove, "contactIds": None}
        errors = await refused(app, client, CHANGE, {**variables, "from": {"filter": postal("1")}})
        assert [(e["field"], e["code"]) for e in errors] == [(["groupId"], "NOT_STATIC")]


async def test_too_many_ids_name_the_way_out(app: Starlette, client: GraphQLClient):
    target = await new_group_id(client, name="Doel")
    [contact] = await new_contact_ids(client, "Aal")
    errors = await refused(
        app,
        client,
        CHANGE,
        {"groupId": target, "remove": False, "contactIds": [contact] * 7, "from": None},
    )
    assert [(e["field"], e["code"]) for e in errors] == [(["contactIds"], "TOO_MANY")]
    assert "from" in errors[0]["message"]


# Lists longer than the request takes: jobs ---------------------------------------------

JOB = """query($id: ID!) { job(id: $id) {
  state total done changed failed cause errors { field code message } } }"""
HISTORY = """query($id: ID!) { group(id: $id) { memberCount
  history(first: 100) { edges { node { action source cause contact { lastName } } } } } }"""


async def job_state(client: GraphQLClient, job_id: str) -> dict[str, Any]:
    return (await client.data(JOB, {"id": job_id}))["job"]


async def member_events(app: Starlette, group_id: str) -> list[dict[str, Any]]:
    """The ``members.*`` outbox events of a group, oldest first."""
    pk = decode_id(group_id, "Group", ["id"])
    async with app.state.sessions() as session:
        events = await session.scalars(
            select(OutboxEvent).where(OutboxEvent.type.like("members.%")).order_by(OutboxEvent.id)
        )
        return [{"type": e.type, **e.data} for e in events if e.data["group"]["id"] == pk]


async def test_a_long_list_becomes_a_job_done_in_chunks(app: Starlette, client: GraphQLClient):
    ids = await new_contact_ids(client, "Aal", "Bos", "Cok", "Dam", "Eck")
    target = await new_group_id(client, name="Leden 2025")
    reader = await new_group_id(client, name="Alle leden", composedOfIds=[target])
    payload = await change(client, target, contactIds=ids)
    assert payload["errors"] == []
    assert payload["changedCount"] is None, "unknown until the job is done"
    assert payload["memberships"] == []
    job_id = payload["job"]["id"]
    queued = await job_state(client, job_id)
    assert (queued["state"], queued["total"], queued["done"]) == ("QUEUED", 5, 0)
    assert queued["cause"] == "add 5 contacts to group 1 ('Leden 2025')"
    assert await last_names(client, target) == [], "nothing changes before a worker runs it"

    runner = make_job_runner(app)
    progress = []
    claimed = await runner.claim()
    while await runner.step(claimed):
        progress.append((await job_state(client, job_id))["done"])
    done = await job_state(client, job_id)
    assert progress == [0, 2, 4], "started, then chunks of two, each with its progress"
    assert (done["state"], done["done"], done["changed"], done["failed"]) == ("SUCCEEDED", 5, 5, 0)
    assert await last_names(client, target) == ["Aal", "Bos", "Cok", "Dam", "Eck"]

    pk = decode_id(job_id, "Job", ["id"])
    for group, source in ((target, "BULK"), (reader, "DERIVED")):
        group_state = (await client.data(HISTORY, {"id": group}))["group"]
        assert group_state["memberCount"] == 5
        rows = [e["node"] for e in group_state["history"]["edges"]]
        assert sorted(r["contact"]["lastName"] for r in rows) == sorted(
            ["Aal", "Bos", "Cok", "Dam", "Eck"]
        ), "each contact's entry once"
        assert {(r["action"], r["source"]) for r in rows} == {("ADDED", source)}
        assert all(r["cause"].startswith(f"job {pk}") for r in rows), rows
        events = await member_events(app, group)
        assert [e["type"] for e in events] == ["members.added"] * 3, "one event per chunk"
        assert sorted(c for e in events for c in e["contactIds"]) == sorted(
            decode_id(i, "Contact", ["id"]) for i in ids
        )
        assert {e["jobId"] for e in events} == {pk}


async def test_a_named_list_is_read_when_the_job_runs(app: Starlette, client: GraphQLClient):
    await people(client)
    target = await new_group_id(client, name="Buurt 10")
    payload = await change(client, target, **{"from": {"filter": postal("10")}})
    assert payload["job"] is None, "three fit in the request"
    [late] = await new_contact_ids(client, "Fok", postalCode="1099FF")
    [later] = await new_contact_ids(client, "Gul", postalCode="1098GG")
    removal = await change(client, target, remove=True, **{"from": {"filter": postal("10")}})
    assert removal["job"] is not None, "five match now: a job"
    [after] = await new_contact_ids(client, "Hek", postalCode="1097HH")
    await run_jobs(app)
    done = await job_state(client, removal["job"]["id"])
    assert (done["state"], done["total"], done["changed"]) == ("SUCCEEDED", 6, 3)
    assert await last_names(client, target) == []
    assert late and later and after


async def test_a_plugin_refusing_in_the_third_chunk_fails_the_job(
    app_factory: Any, database_url: str
):
    refuser = RefuseContacts()
    app = app_factory([refuser], bulk_inline_limit=INLINE_LIMIT, job_chunk_size=CHUNK)
    async with connected(app) as client:
        ids = await new_contact_ids(client, *(f"Lid {i}" for i in range(6)))
        refuser.refused = {decode_id(ids[4], "Contact", ["id"])}
        target = await new_group_id(client, name="Leden")
        payload = await change(client, target, contactIds=ids)
        await run_jobs(app)
        failed = await job_state(client, payload["job"]["id"])
        assert (failed["state"], failed["done"], failed["changed"]) == ("FAILED", 4, 4)
        assert failed["failed"] == 2, "the refused chunk's items"
        assert [(e["code"], e["message"]) for e in failed["errors"]] == [
            ("NOT_EDITABLE", "Lid 4 may not join.")
        ]
        assert await last_names(client, target) == [f"Lid {i}" for i in range(4)]


async def test_contact_edits_go_on_while_a_job_runs(app: Starlette, client: GraphQLClient):
    ids = await people(client)
    target = await new_group_id(client, name="Leden")
    area = await new_group_id(
        client,
        name="Leden in 1011",
        filter=in_1011_and(target),
    )
    payload = await change(client, target, contactIds=list(ids.values()))
    runner = make_job_runner(app)
    job = await runner.claim()
    assert await runner.step(job), "the first chunk: Aal and Bos"
    await client.data(
        'mutation($id: ID!) { updateContact(id: $id, input: {postalCode: "1011XX"}) { errors { code } } }',
        {"id": ids["Eck"]},
    )
    await client.data(
        'mutation($id: ID!) { updateContact(id: $id, input: {postalCode: "9999AA"}) { errors { code } } }',
        {"id": ids["Aal"]},
    )
    while await runner.step(job):
        pass
    assert (await job_state(client, payload["job"]["id"]))["state"] == "SUCCEEDED"
    derived = (await client.data(DERIVED, {"id": area}))["group"]
    assert sorted(n["lastName"] for n in derived["members"]["nodes"]) == ["Bos", "Dam", "Eck"]
    assert await membership_differences(app) == []


async def test_who_may_start_and_see_a_bulk_job(app: Starlette, client: GraphQLClient):
    ids = await new_contact_ids(client, *(f"Lid {i}" for i in range(4)))
    target = await new_group_id(client, name="Leden")
    _, viewer_token = await make_user(app, "Kijker", "kijker@example.coop", role="viewer")
    _, other_token = await make_user(app, "Ander", "ander@example.coop")
    _, manager_token = await make_user(app, "Beheer", "beheer@example.coop")
    viewer = GraphQLClient(client.http, viewer_token)
    other = GraphQLClient(client.http, other_token)
    manager = GraphQLClient(client.http, manager_token)
    variables = {"groupId": target, "remove": False, "contactIds": ids, "from": None}
    denied = await refused(app, viewer, CHANGE, variables)
    assert [e["code"] for e in denied] == ["FORBIDDEN"]
    started = (await manager.data(CHANGE, variables))["add"]
    job_id = started["job"]["id"]
    assert (await job_state(manager, job_id))["state"] == "QUEUED"
    assert await job_state(other, job_id) is None, "another user's job is not there"
    assert (await job_state(client, job_id))["total"] == 4, "jobs.view sees every job"


async def test_contact_edits_running_beside_a_job_are_kept(app_factory: Any, database_url: str):
    """A worker runs a job of 40 chunks while a client edits the contacts it adds, side
    by side: every edit is kept (or refused CONFLICT after its retries, never an error),
    the job succeeds, and stored membership is exact."""
    app = app_factory(bulk_inline_limit=INLINE_LIMIT, job_chunk_size=CHUNK)
    async with connected(app) as client:
        ids = await new_contact_ids(client, *(f"Lid {i}" for i in range(80)), postalCode="1011AA")
        target = await new_group_id(client, name="Leden")
        await new_group_id(
            client,
            name="Leden in 1011",
            filter=in_1011_and(target),
        )
        payload = await change(client, target, **{"from": {"filter": postal("1011")}})
        job_id = payload["job"]["id"]
        edit = (
            "mutation($id: ID!, $code: String) { updateContact(id: $id, input: {postalCode: $code}) "
            "{ errors { code } } }"
        )
        outcomes = []

        async def edits() -> None:
            for round_, contact in enumerate(ids[::4]):
                code = "2022BB" if round_ % 2 else "1011ZZ"
                body = await client.execute(edit, {"id": contact, "code": code})
                assert "errors" not in body, body
                outcomes.extend(e["code"] for e in body["data"]["updateContact"]["errors"])

        await asyncio.gather(run_jobs(app), edits())
        assert set(outcomes) <= {"CONFLICT"}
        assert (await job_state(client, job_id))["state"] == "SUCCEEDED"
        assert await membership_differences(app) == []
