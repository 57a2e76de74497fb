"""The Laposta plugin against the stand-in on loopback (laposta_standin.py), on SQLite and
PostgreSQL: pushes through the outbox, the resync and pull jobs, the webhook, bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from graphql_api_laposta.models import MemberSync
from laposta_testing import WEBHOOK_SECRET, Setup
from sqlalchemy import delete, event, select

from graphql_api.plugin import (
    OptOutSource,
    UserInputError,
    decode_id,
    opted_out,
    record_opt_out,
    utcnow,
    withdraw_opt_out,
)
from graphql_api.testing import (
    UPDATE_CONTACT,
    GraphQLClient,
    StatementCounter,
    add_members,
    deliver_all,
    make_job_runner,
    make_user,
    new_contact_id,
    new_group_id,
    refused,
    remove_members,
    run_jobs,
    run_schedules,
    unchanged,
    undescribed,
)

LINK = """mutation($g: ID!, $l: String!) { linkMailingList(groupId: $g, listId: $l) {
  sync { listId counts { pending synced error unsubscribed } } job { id kind state }
  errors { field code message } } }"""
UNLINK = """mutation($g: ID!) { unlinkMailingList(groupId: $g) {
  group { id } errors { field code message } } }"""
RESYNC = """mutation($g: ID!) { resyncMailingList(groupId: $g) {
  job { id kind state } errors { field code message } } }"""
PULL = """mutation($g: ID!) { pullMailingListUnsubscribes(groupId: $g) {
  job { id kind state } errors { field code message } } }"""
SYNC = """query($g: ID!) { mailingListSync(groupId: $g) { listId linkedAt lastPulledAt
  counts { pending synced error unsubscribed }
  errors(first: 10) { nodes { contact { id email } lastError at } } } }"""
JOB = "query($j: ID!) { job(id: $j) { state errors { code message } } }"
DELIVERIES = "{ notificationDeliveries(first: 50) { nodes { plugin status attempts lastError } } }"


def pk(global_id: str) -> int:
    """A contact's, a group's or a job's primary key."""
    for type_name in ("Contact", "Group", "Job"):
        try:
            return decode_id(global_id, type_name, ["id"])
        except UserInputError:
            continue
    raise AssertionError(f"{global_id!r} is no contact's, group's or job's id")


async def settle(s: Setup) -> None:
    """Run jobs and deliveries until neither has anything left (a job's opt-outs are
    events, a delivery may start nothing)."""
    for _ in range(3):
        await run_jobs(s.app)
        await deliver_all(s.app)


async def person(s: Setup, last: str, **values: Any) -> str:
    email = values.pop("email", f"{last.lower()}@zon.coop")
    return await new_contact_id(s.client, firstName="Anna", lastName=last, email=email, **values)


async def linked_group(s: Setup, *members: str, name: str = "Nieuwsbrief") -> tuple[str, str]:
    """A static group with these members, linked to a new list and resynced."""
    group = await new_group_id(s.client, name=name)
    if members:
        await add_members(s.client, group, list(members))
    list_id = s.standin.new_list()
    data = await s.client.data(LINK, {"g": group, "l": list_id})
    assert data["linkMailingList"]["errors"] == []
    await settle(s)
    return group, list_id


async def sync_of(s: Setup, group: str) -> dict[str, Any]:
    return (await s.client.data(SYNC, {"g": group}))["mailingListSync"]


async def test_link_starts_a_resync_that_fills_the_list(setup: Setup):
    s = setup
    people = [await person(s, name) for name in ("Jansen", "Bakker", "Visser")]
    group = await new_group_id(s.client, name="Nieuwsbrief")
    await add_members(s.client, group, people)
    list_id = s.standin.new_list()
    data = await s.client.data(LINK, {"g": group, "l": list_id})
    payload = data["linkMailingList"]
    assert payload["errors"] == []
    assert payload["job"]["kind"] == "laposta.resync"
    assert payload["sync"]["counts"] == {"pending": 3, "synced": 0, "error": 0, "unsubscribed": 0}
    await settle(s)
    assert set(s.standin.active(list_id)) == {
        "jansen@zon.coop",
        "bakker@zon.coop",
        "visser@zon.coop",
    }
    member = s.standin.active(list_id)["jansen@zon.coop"]
    assert member["custom_fields"] == {"voornaam": "Anna", "achternaam": "Jansen"}
    sync = await sync_of(s, group)
    assert sync["listId"] == list_id and sync["lastPulledAt"] is not None
    assert sync["counts"] == {"pending": 0, "synced": 3, "error": 0, "unsubscribed": 0}
    assert undescribed(s.app.state.schema) == []
    plugins = (await s.client.data("{ plugins { name error hooks subscriptions } }"))["plugins"]
    entry = next(p for p in plugins if p["name"] == "laposta")
    assert entry["error"] is None
    assert {"deliver", "job_kinds", "scheduled_jobs", "http_routes"} <= set(entry["hooks"])
    assert "contacts.updated" in entry["subscriptions"]


async def test_a_static_add_and_remove_reach_the_list(setup: Setup):
    s = setup
    anna = await person(s, "Jansen")
    group, list_id = await linked_group(s, anna)
    bram = await person(s, "Bakker")
    await add_members(s.client, group, [bram])
    await settle(s)
    assert set(s.standin.active(list_id)) == {"jansen@zon.coop", "bakker@zon.coop"}
    await remove_members(s.client, group, [anna])
    await settle(s)
    assert set(s.standin.active(list_id)) == {"bakker@zon.coop"}
    assert s.standin.by_email(list_id, "jansen@zon.coop") is None
    assert (await sync_of(s, group))["counts"]["synced"] == 1


async def test_many_entries_go_through_the_bulk_endpoint(setup: Setup):
    s = setup
    group, list_id = await linked_group(s)
    people = [await person(s, f"Lid{i}") for i in range(5)]  # over the threshold of 3
    await add_members(s.client, group, people)
    await settle(s)
    assert ("POST", f"/v2/list/{list_id}/members") in s.standin.calls
    assert len(s.standin.active(list_id)) == len(s.standin.lists[list_id]) == 5
    assert (await sync_of(s, group))["counts"]["synced"] == 5


async def test_a_derived_exit_deletes_the_member_on_laposta(setup: Setup):
    s = setup
    anna = await person(s, "Jansen", postalCode="8011 AB")
    bram = await person(s, "Bakker", postalCode="8021 CD")
    group = await new_group_id(
        s.client,
        name="Postcode 80",
        filter={"condition": {"field": "postalCode", "op": "STARTS_WITH", "value": "80"}},
    )
    list_id = s.standin.new_list()
    assert (await s.client.data(LINK, {"g": group, "l": list_id}))["linkMailingList"][
        "errors"
    ] == []
    await settle(s)
    assert set(s.standin.active(list_id)) == {"jansen@zon.coop", "bakker@zon.coop"}
    moved = await s.client.data(UPDATE_CONTACT, {"id": anna, "input": {"postalCode": "7411 EF"}})
    assert moved["updateContact"]["errors"] == []
    await settle(s)
    assert set(s.standin.active(list_id)) == {"bakker@zon.coop"}
    assert s.standin.by_email(list_id, "jansen@zon.coop") is None
    assert any(method == "DELETE" for method, _ in s.standin.calls)
    assert (await sync_of(s, group))["counts"]["synced"] == 1
    async with s.app.state.sessions() as session:
        rows = set(await session.scalars(select(MemberSync.contact_id)))
    assert rows == {pk(bram)}, "the one who left has no state row any more"


async def test_an_address_change_is_pushed_as_an_update(setup: Setup):
    s = setup
    anna = await person(s, "Jansen")
    group, list_id = await linked_group(s, anna)
    member_id = s.standin.active(list_id)["jansen@zon.coop"]["member_id"]
    changed = await s.client.data(
        UPDATE_CONTACT, {"id": anna, "input": {"email": "anna@wind.coop", "lastName": "Wind"}}
    )
    assert changed["updateContact"]["errors"] == []
    await settle(s)
    active = s.standin.active(list_id)
    assert set(active) == {"anna@wind.coop"}
    assert active["anna@wind.coop"]["member_id"] == member_id, "the same member, updated"
    assert active["anna@wind.coop"]["custom_fields"]["achternaam"] == "Wind"
    assert ("POST", f"/v2/member/{member_id}") in s.standin.calls
    assert (await sync_of(s, group))["counts"]["synced"] == 1


async def test_a_429_is_retried_then_synced(setup: Setup):
    s = setup
    group, list_id = await linked_group(s)
    anna = await person(s, "Jansen")
    s.standin.rate_limit(3)  # the client waits once in place (Retry-After 0); then the outbox
    await add_members(s.client, group, [anna])
    await settle(s)
    assert s.standin.rate_limited == 0
    assert set(s.standin.active(list_id)) == {"jansen@zon.coop"}
    nodes = (await s.client.data(DELIVERIES))["notificationDeliveries"]["nodes"]
    ours = [n for n in nodes if n["plugin"] == "laposta" and n["attempts"] > 1]
    assert ours and all(n["status"] == "DELIVERED" for n in ours)
    assert (await sync_of(s, group))["counts"]["synced"] == 1


async def test_a_server_error_that_resolves_later(setup: Setup):
    s = setup
    group, list_id = await linked_group(s)
    anna = await person(s, "Jansen")
    s.standin.fail(2)
    await add_members(s.client, group, [anna])
    await settle(s)
    assert s.standin.failing == 0
    assert set(s.standin.active(list_id)) == {"jansen@zon.coop"}
    nodes = (await s.client.data(DELIVERIES))["notificationDeliveries"]["nodes"]
    assert any(n["plugin"] == "laposta" and n["attempts"] >= 3 for n in nodes)


async def test_a_member_laposta_already_has_is_taken_over(setup: Setup):
    s = setup
    group, list_id = await linked_group(s)
    known = s.standin.add(list_id, "jansen@zon.coop")
    anna = await person(s, "Jansen")
    bram = await person(s, "Bakker")
    s.standin.conflict("bakker@zon.coop")  # answers 204 "already exists", upsert or not
    await add_members(s.client, group, [anna, bram])
    await settle(s)
    assert not s.standin.conflicts, "the 204 was answered"
    active = s.standin.active(list_id)
    assert active["jansen@zon.coop"]["member_id"] == known
    assert "bakker@zon.coop" in active
    assert len(s.standin.lists[list_id]) == 2
    assert (await sync_of(s, group))["counts"] == {
        "pending": 0,
        "synced": 2,
        "error": 0,
        "unsubscribed": 0,
    }


async def test_a_refused_address_is_an_error_and_the_others_sync(setup: Setup):
    s = setup
    group, list_id = await linked_group(s)
    s.standin.refuse("kapot@zon.coop")
    bad = await person(s, "Kapot")
    good = await person(s, "Jansen")
    await add_members(s.client, group, [bad, good])
    await settle(s)
    assert set(s.standin.active(list_id)) == {"jansen@zon.coop"}
    sync = await sync_of(s, group)
    assert sync["counts"] == {"pending": 0, "synced": 1, "error": 1, "unsubscribed": 0}
    [error] = sync["errors"]["nodes"]
    assert error["contact"]["id"] == bad and "invalid" in error["lastError"] and error["at"]
    nodes = (await s.client.data(DELIVERIES))["notificationDeliveries"]["nodes"]
    assert all(n["status"] != "FAILED" and n["status"] != "DEAD" for n in nodes)


async def test_a_webhook_unsubscribe_opts_the_contact_out(setup: Setup):
    s = setup
    anna = await person(s, "Jansen")
    bram = await person(s, "Bakker")
    group, list_id = await linked_group(s, anna, bram)
    member_id = s.standin.active(list_id)["jansen@zon.coop"]["member_id"]
    s.standin.lists[list_id][member_id]["state"] = "unsubscribed"
    body = s.standin.webhook_body(list_id, member_id)
    url = f"/plugins/laposta/webhook?secret={WEBHOOK_SECRET}"
    answer = await s.standin.post_webhook(s.http, url, body)
    assert answer.status_code == 200, answer.text
    async with s.app.state.sessions() as session:
        out = set(await session.scalars(opted_out(pk(group))))
    assert out == {pk(anna)}
    await settle(s)  # mail.opted_out from the list is not pushed back
    sync = await sync_of(s, group)
    assert sync["counts"] == {"pending": 0, "synced": 1, "error": 0, "unsubscribed": 1}
    # Added again to the group later: not pushed as active while opted out.
    await remove_members(s.client, group, [anna])
    await add_members(s.client, group, [anna])
    await settle(s)
    assert s.standin.lists[list_id][member_id]["state"] == "unsubscribed"


async def test_other_webhook_events_are_acknowledged(setup: Setup):
    s = setup
    anna = await person(s, "Jansen")
    group, list_id = await linked_group(s, anna)
    member_id = s.standin.active(list_id)["jansen@zon.coop"]["member_id"]
    url = f"/plugins/laposta/webhook?secret={WEBHOOK_SECRET}"
    async with unchanged(s.app):
        body = s.standin.webhook_body(list_id, member_id, event="modified", action="edited")
        assert (await s.standin.post_webhook(s.http, url, body)).status_code == 200
        malformed = await s.http.post(url, content=b'{"data": "nee"}')
        assert malformed.status_code == 400
    # Deleted on Laposta's side: no opt-out; the member id is forgotten, PENDING again.
    body = s.standin.webhook_body(list_id, member_id, action="deleted")
    assert (await s.standin.post_webhook(s.http, url, body)).status_code == 200
    async with s.app.state.sessions() as session:
        assert list(await session.scalars(opted_out(pk(group)))) == []
    assert (await sync_of(s, group))["counts"]["pending"] == 1


@pytest.mark.parametrize("secret", ["", "wrong", WEBHOOK_SECRET + "x"])
async def test_a_forged_webhook_is_refused_and_writes_nothing(setup: Setup, secret: str):
    s = setup
    anna = await person(s, "Jansen")
    group, list_id = await linked_group(s, anna)
    member_id = s.standin.active(list_id)["jansen@zon.coop"]["member_id"]
    body = s.standin.webhook_body(list_id, member_id)
    async with unchanged(s.app):
        answer = await s.standin.post_webhook(
            s.http, f"/plugins/laposta/webhook?secret={secret}", body
        )
    assert answer.status_code == 401
    async with s.app.state.sessions() as session:
        assert list(await session.scalars(opted_out(pk(group)))) == []


async def test_unsubscribes_are_pulled_on_demand_and_daily(setup: Setup):
    s = setup
    anna = await person(s, "Jansen")
    bram = await person(s, "Bakker")
    group, list_id = await linked_group(s, anna, bram)
    for member in s.standin.lists[list_id].values():
        if member["email"] == "jansen@zon.coop":
            member["state"] = "unsubscribed"
    data = await s.client.data(PULL, {"g": group})
    assert data["pullMailingListUnsubscribes"]["errors"] == []
    assert data["pullMailingListUnsubscribes"]["job"]["kind"] == "laposta.pull_unsubscribes"
    await settle(s)
    async with s.app.state.sessions() as session:
        assert set(await session.scalars(opted_out(pk(group)))) == {pk(anna)}

    # The daily schedule: first seen now, due a day later.
    for member in s.standin.lists[list_id].values():
        member["state"] = "unsubscribed"
    assert await run_schedules(s.app) == 0
    assert await run_schedules(s.app, utcnow() + timedelta(days=1, minutes=1)) == 1
    await settle(s)
    async with s.app.state.sessions() as session:
        assert set(await session.scalars(opted_out(pk(group)))) == {pk(anna), pk(bram)}
    assert (await sync_of(s, group))["counts"]["unsubscribed"] == 2


async def test_a_resync_repairs_differences_both_ways(setup: Setup):
    s = setup
    anna = await person(s, "Jansen")
    bram = await person(s, "Bakker")
    cor = await person(s, "Visser")
    dirk = await person(s, "Smit")
    group, list_id = await linked_group(s, anna, bram, cor, dirk)
    before = s.standin.active(list_id)
    gone = before["jansen@zon.coop"]["member_id"]
    del s.standin.lists[list_id][gone]  # deleted on Laposta's side
    s.standin.lists[list_id][before["bakker@zon.coop"]["member_id"]]["state"] = "unsubscribed"
    s.standin.lists[list_id][before["smit@zon.coop"]["member_id"]]["email"] = "oud@zon.coop"
    stranger = s.standin.add(list_id, "vreemde@elders.nl")  # added on Laposta's side
    left = s.standin.add(list_id, "weg@elders.nl", state="unsubscribed")
    async with s.app.state.sessions() as session, session.begin():
        # Our own state lost for Visser: the resync finds the member again by address.
        await session.execute(delete(MemberSync).where(MemberSync.contact_id == pk(cor)))

    data = await s.client.data(RESYNC, {"g": group})
    assert data["resyncMailingList"]["errors"] == []
    job = data["resyncMailingList"]["job"]["id"]
    await run_jobs(s.app, job_chunk_size=2)  # several chunks, each its own transaction
    await settle(s)

    state = (await s.client.data(JOB, {"j": job}))["job"]
    assert state["state"] == "SUCCEEDED" and state["errors"] == []
    assert set(s.standin.active(list_id)) == {"jansen@zon.coop", "visser@zon.coop", "smit@zon.coop"}
    assert stranger not in s.standin.lists[list_id], "not in the group: deleted"
    assert s.standin.lists[list_id][left]["state"] == "unsubscribed", "a refusal is kept"
    async with s.app.state.sessions() as session:
        assert set(await session.scalars(opted_out(pk(group)))) == {pk(bram)}
        ids = dict(
            (await session.execute(select(MemberSync.contact_id, MemberSync.member_id))).all()
        )
    active = s.standin.active(list_id)
    assert ids[pk(anna)] == active["jansen@zon.coop"]["member_id"] != gone
    assert ids[pk(cor)] == before["visser@zon.coop"]["member_id"]
    assert ids[pk(dirk)] == before["smit@zon.coop"]["member_id"]
    assert (await sync_of(s, group))["counts"] == {
        "pending": 0,
        "synced": 3,
        "error": 0,
        "unsubscribed": 1,
    }


async def test_a_list_laposta_does_not_know_fails_the_resync(setup: Setup):
    s = setup
    anna = await person(s, "Jansen")
    group = await new_group_id(s.client, name="Nieuwsbrief")
    await add_members(s.client, group, [anna])
    data = await s.client.data(LINK, {"g": group, "l": "OnbekendeLijst"})
    job = data["linkMailingList"]["job"]["id"]
    await settle(s)
    state = (await s.client.data(JOB, {"j": job}))["job"]
    assert state["state"] == "FAILED"
    assert [e["code"] for e in state["errors"]] == ["LAPOSTA_LIST_REFUSED"]
    assert (await sync_of(s, group))["counts"]["pending"] == 1


async def test_an_opt_out_by_the_group_mail_reaches_the_list(setup: Setup):
    s = setup
    anna = await person(s, "Jansen")
    group, list_id = await linked_group(s, anna)
    member_id = s.standin.active(list_id)["jansen@zon.coop"]["member_id"]
    async with s.app.state.sessions() as session, session.begin():
        source = OptOutSource.UNSUBSCRIBE_LINK
        assert await record_opt_out(session, pk(anna), pk(group), source)
    await settle(s)
    assert s.standin.lists[list_id][member_id]["state"] == "unsubscribed"
    assert (await sync_of(s, group))["counts"]["unsubscribed"] == 1
    async with s.app.state.sessions() as session, session.begin():
        assert await withdraw_opt_out(session, pk(anna), pk(group), OptOutSource.PORTAL)
    await settle(s)
    assert s.standin.lists[list_id][member_id]["state"] == "active"
    assert (await sync_of(s, group))["counts"]["synced"] == 1


async def test_unlink_stops_the_sync(setup: Setup):
    s = setup
    anna = await person(s, "Jansen")
    group, list_id = await linked_group(s, anna)
    data = await s.client.data(UNLINK, {"g": group})
    assert data["unlinkMailingList"] == {"group": {"id": group}, "errors": []}
    assert await sync_of(s, group) is None
    bram = await person(s, "Bakker")
    await add_members(s.client, group, [bram])
    await settle(s)
    assert set(s.standin.active(list_id)) == {"jansen@zon.coop"}


UNKNOWN_GROUP = "R3JvdXA6OTk5OQ=="  # Group:9999


async def test_bad_input_changes_nothing(setup: Setup):
    s = setup
    group, list_id = await linked_group(s)
    other = await new_group_id(s.client, name="Ander")
    cases = [
        (LINK, {"g": UNKNOWN_GROUP, "l": "abc"}, ["groupId"], "NOT_FOUND"),
        (LINK, {"g": "nonsense", "l": "abc"}, ["groupId"], "INVALID_ID"),
        (LINK, {"g": other, "l": ""}, ["listId"], "REQUIRED"),
        (LINK, {"g": other, "l": "x" * 51}, ["listId"], "TOO_LONG"),
        (LINK, {"g": other, "l": "a b/c"}, ["listId"], "INVALID"),
        (LINK, {"g": group, "l": "fresh"}, ["groupId"], "LAPOSTA_ALREADY_LINKED"),
        (LINK, {"g": other, "l": list_id}, ["listId"], "LAPOSTA_LIST_TAKEN"),
        (UNLINK, {"g": UNKNOWN_GROUP}, ["groupId"], "NOT_FOUND"),
        (UNLINK, {"g": other}, ["groupId"], "LAPOSTA_NOT_LINKED"),
        (RESYNC, {"g": UNKNOWN_GROUP}, ["groupId"], "NOT_FOUND"),
        (RESYNC, {"g": other}, ["groupId"], "LAPOSTA_NOT_LINKED"),
        (PULL, {"g": UNKNOWN_GROUP}, ["groupId"], "NOT_FOUND"),
        (PULL, {"g": other}, ["groupId"], "LAPOSTA_NOT_LINKED"),
    ]
    for mutation, variables, field, code in cases:
        [error] = await refused(s.app, s.client, mutation, variables)
        assert (error["field"], error["code"]) == (field, code), (variables, error)


async def test_without_permission_or_key_nothing_changes(
    setup: Setup, app_factory: Any, monkeypatch: pytest.MonkeyPatch
):
    s = setup
    group = await new_group_id(s.client, name="Nieuwsbrief")
    _, token = await make_user(s.app, "Pieter", "pieter@example.coop", role="viewer")
    viewer = GraphQLClient(s.http, token)
    for mutation, variables in [
        (LINK, {"g": group, "l": "abc"}),
        (UNLINK, {"g": group}),
        (RESYNC, {"g": group}),
        (PULL, {"g": group}),
    ]:
        [error] = await refused(s.app, viewer, mutation, variables)
        assert error["code"] == "FORBIDDEN"
    assert (await viewer.data(SYNC, {"g": group}))["mailingListSync"] is None

    monkeypatch.setenv("GRAPHQL_API_LAPOSTA_API_KEY", "")
    import graphql_api_laposta
    import httpx

    app = app_factory(plugins=[graphql_api_laposta])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        _, admin = await make_user(app, "Anna", "anna@example.coop", admin=True)
        unconfigured = GraphQLClient(http, admin)
        [error] = await refused(app, unconfigured, LINK, {"g": group, "l": "abc"})
        assert error["code"] == "LAPOSTA_NOT_CONFIGURED"


async def test_a_push_costs_the_same_statements_for_6_or_60_contacts(setup: Setup):
    s = setup
    counts = []
    for size in (6, 60):
        group, list_id = await linked_group(s, name=f"Groep {size}")
        people = [await person(s, f"P{size}x{i}") for i in range(size)]
        await add_members(s.client, group, people)
        counter = StatementCounter()
        engine = s.app.state.engine.sync_engine
        event.listen(engine, "before_cursor_execute", counter)
        try:
            with counter:
                await deliver_all(s.app)
        finally:
            event.remove(engine, "before_cursor_execute", counter)
        assert len(s.standin.active(list_id)) == size
        counts.append(counter.count)
    assert counts[0] == counts[1], counts
    # And all 60 leave at once: 60 DELETEs, a few at a time, in one delivery.
    await remove_members(s.client, group, people)
    await settle(s)
    assert s.standin.lists[list_id] == {}
    assert (await sync_of(s, group))["counts"]["synced"] == 0


async def test_an_erased_contact_leaves_the_list(setup: Setup):
    s = setup
    anna = await person(s, "Jansen")
    bram = await person(s, "Bakker")
    group, list_id = await linked_group(s, anna, bram)
    erased = await s.client.data(
        "mutation($c: ID!) { eraseContact(contactId: $c) { errors { code } } }", {"c": anna}
    )
    assert erased["eraseContact"]["errors"] == []
    await settle(s)
    assert set(s.standin.active(list_id)) == {"bakker@zon.coop"}
    assert s.standin.by_email(list_id, "jansen@zon.coop") is None
    assert (await sync_of(s, group))["counts"]["synced"] == 1


async def test_a_resync_resumes_after_a_fault_mid_way(setup: Setup):
    s = setup
    people = [await person(s, f"Lid{i}") for i in range(5)]
    group = await new_group_id(s.client, name="Nieuwsbrief")
    await add_members(s.client, group, people)
    list_id = s.standin.new_list()
    s.standin.fail(1)  # the prepare's read of the list fails once: retried
    data = await s.client.data(LINK, {"g": group, "l": list_id})
    job = data["linkMailingList"]["job"]["id"]
    runner = make_job_runner(s.app, job_chunk_size=2)
    job_id = await runner.claim()
    assert job_id == pk(job)
    assert await runner.step(job_id) is False  # the 503: tried again later
    assert await runner.claim() == job_id
    assert await runner.step(job_id) is True  # prepared
    assert await runner.step(job_id) is True  # first chunk: 2 members
    assert len(s.standin.active(list_id)) == 2
    s.standin.fail(1)
    assert await runner.step(job_id) is False  # second chunk fails whole
    # Nothing of it is kept here (Laposta may have had one of its two: upsert makes the
    # repeat harmless).
    assert (await sync_of(s, group))["counts"]["synced"] == 2
    await runner.run_until_idle()
    state = (await s.client.data(JOB, {"j": job}))["job"]
    assert state["state"] == "SUCCEEDED"
    assert len(s.standin.active(list_id)) == len(s.standin.lists[list_id]) == 5
    assert (await sync_of(s, group))["counts"]["synced"] == 5
