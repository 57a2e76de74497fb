"""Subscriptions over graphql-transport-ws against a real `graphql-api serve`, on SQLite and
PostgreSQL: what they send is the outbox's events, in commit order, across processes,
resumable after any event id, and a client that does not read holds up no one."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import insert, select

from graphql_api.contacts.models import Contact
from graphql_api.graphql_base.relay import parse_global_id
from graphql_api.groups.membership_writes import add_members as add_members_in_domain
from graphql_api.groups.models import MembershipSource
from graphql_api.kernel.access import SYSTEM
from graphql_api.notifications.models import Delivery, DeliveryStatus, OutboxEvent
from graphql_api.testing import (
    UPDATE_GROUP,
    GraphQLClient,
    add_members,
    make_user,
    new_contact_ids,
    new_group_id,
    new_template_id,
    remove_members,
    serving,
)

WAIT = 15.0
"""Seconds a message may take to arrive; far more than it does."""

MEMBERSHIPS = """
subscription Members($groupId: ID!, $after: Int) {
  membershipChanged(groupId: $groupId, afterEventId: $after) {
    eventId action source cause groupId contactId contact { lastName } group { name }
  }
}"""
COSTLY = """
subscription Costly($groupId: ID!) {
  membershipChanged(groupId: $groupId) {
    group { members(first: 100) { nodes { groups { members(first: 100) { nodes { id } } } } } }
  }
}"""
"""Each event would load a million members: over GRAPHQL_API_MAX_QUERY_COST."""
GROUPS = """
subscription Groups($groupId: ID, $after: Int) {
  groupChanged(groupId: $groupId, afterEventId: $after) {
    eventId kind name groupId group { name }
  }
}"""


@dataclass
class Live:
    url: str
    token: str
    server: GraphQLClient
    """Writes through the server that serves the subscriptions."""
    elsewhere: GraphQLClient
    """Writes through another application in this test's process: another process's."""
    app: Any


@pytest.fixture
def live_env(server_env: dict[str, str]) -> dict[str, str]:
    """The kit's server environment, without the in-process worker."""
    return {
        **server_env,
        "GRAPHQL_API_OUTBOX_IN_PROCESS_WORKER": "false",
        # SQLite has no notifications: another process's commits are found by polling.
        "GRAPHQL_API_FEED_POLL_SECONDS": "0.2",
    }


@pytest.fixture
async def live(live_env: dict[str, str], app_factory: Callable[..., Any]) -> AsyncIterator[Live]:
    app = app_factory()
    _, token = await make_user(app, "Sanne de Vries", "sanne@example.coop", admin=True)
    with serving(live_env) as (url, _):
        async with (
            httpx.AsyncClient(base_url=url, timeout=30) as remote,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as local,
        ):
            yield Live(url, token, GraphQLClient(remote, token), GraphQLClient(local, token), app)


class Subscriber:
    """One graphql-transport-ws connection running one subscription."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket

    async def next(self) -> dict[str, Any]:
        """The data of the next message; fails on an error message."""
        message = json.loads(await asyncio.wait_for(self.socket.recv(), WAIT))
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message["payload"]
        return next(iter(message["payload"]["data"].values()))

    async def take(self, count: int) -> list[dict[str, Any]]:
        return [await self.next() for _ in range(count)]

    async def nothing_more(self) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.socket.recv(), 1.0)


@asynccontextmanager
async def subscribed(
    live: Live, document: str, variables: dict[str, Any], token: str | None = None, **options: Any
) -> AsyncIterator[Subscriber]:
    async with websockets.connect(
        live.url.replace("http", "ws") + "/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        **options,
    ) as socket:
        init = {"Authorization": f"Bearer {token or live.token}"}
        await socket.send(json.dumps({"type": "connection_init", "payload": init}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        payload = {"query": document, "variables": variables}
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        # The subscription starts reading after the newest event once its first statement
        # ran; a change made before that could be missed, so wait for the server to be there.
        await asyncio.sleep(0.5)
        yield Subscriber(socket)


async def first_error(live: Live, document: str, variables: dict[str, Any], token: str) -> Any:
    async with subscribed(live, document, variables, token) as subscriber:
        message = json.loads(await asyncio.wait_for(subscriber.socket.recv(), WAIT))
        return message


def _pk(global_id: str) -> int:
    parsed = parse_global_id(global_id)
    assert parsed is not None
    return parsed[1]


async def outbox_ids(app: Any, group_id: str, types: tuple[str, ...]) -> list[int]:
    """The ids of the outbox events of ``types`` about one group: what webhooks get."""
    async with app.state.sessions() as session:
        rows = await session.execute(
            select(OutboxEvent.id, OutboxEvent.data)
            .where(OutboxEvent.type.in_(types))
            .order_by(OutboxEvent.id)
        )
        return [i for i, data in rows if data["group"]["id"] == _pk(group_id)]


async def test_members_joining_and_leaving_arrive_in_commit_order(live: Live):
    group = await new_group_id(live.server, name="Zonnepanelen Noord")
    anna, bram = await new_contact_ids(live.server, "Jansen", "Bakker")
    async with subscribed(live, MEMBERSHIPS, {"groupId": group}) as subscriber:
        await add_members(live.server, group, [anna])
        await add_members(live.server, group, [bram])
        await remove_members(live.server, group, [anna])
        got = await subscriber.take(3)
        await subscriber.nothing_more()
    assert [(m["action"], m["contactId"]) for m in got] == [
        ("ADDED", anna),
        ("ADDED", bram),
        ("REMOVED", anna),
    ]
    assert [m["contact"]["lastName"] for m in got] == ["Jansen", "Bakker", "Jansen"]
    assert {m["group"]["name"] for m in got} == {"Zonnepanelen Noord"}
    assert {m["groupId"] for m in got} == {group}
    ids = [m["eventId"] for m in got]
    assert ids == await outbox_ids(live.app, group, ("members.added", "members.removed"))


async def test_a_composite_groups_derived_members_arrive_with_their_cause(live: Live):
    static = await new_group_id(live.server, name="Dak geschikt")
    composite = await new_group_id(live.server, name="Alle daken", composedOfIds=[static])
    [anna] = await new_contact_ids(live.server, "Jansen")
    async with subscribed(live, MEMBERSHIPS, {"groupId": composite}) as subscriber:
        await add_members(live.server, static, [anna])
        [entered] = await subscriber.take(1)
        await subscriber.nothing_more()
    assert entered["action"] == "ADDED" and entered["source"] == "DERIVED"
    assert entered["contactId"] == anna and entered["cause"]


async def test_group_changes_arrive_for_every_group_or_one(live: Live):
    async with (
        subscribed(live, GROUPS, {}) as every,
    ):
        group = await new_group_id(live.server, name="Buurtteam Oost")
        async with subscribed(live, GROUPS, {"groupId": group}) as one:
            renamed = await live.server.data(
                UPDATE_GROUP, {"id": group, "input": {"name": "Buurtteam Oost-Zuid"}}
            )
            assert renamed["updateGroup"]["errors"] == []
            other = await new_group_id(live.server, name="Buurtteam West")
            deleted = await live.server.data(
                "mutation($id: ID!) { deleteGroup(id: $id) { errors { code } } }", {"id": group}
            )
            assert deleted["deleteGroup"]["errors"] == []
            for_one = await one.take(2)
            await one.nothing_more()
        for_every = await every.take(4)
    assert [(m["kind"], m["groupId"]) for m in for_every] == [
        ("CREATED", group),
        ("UPDATED", group),
        ("CREATED", other),
        ("DELETED", group),
    ]
    assert [(m["kind"], m["name"]) for m in for_one] == [
        ("UPDATED", "Buurtteam Oost-Zuid"),
        ("DELETED", "Buurtteam Oost-Zuid"),
    ]
    assert for_one[1]["group"] is None, "a deleted group is gone"


async def test_another_processes_commits_reach_the_subscriber(live: Live):
    """On PostgreSQL by NOTIFY, on SQLite by the poll: the writes go through another
    application on the same database, in this test's process."""
    group = await new_group_id(live.elsewhere, name="Warmtepompen")
    [anna] = await new_contact_ids(live.elsewhere, "Visser")
    async with subscribed(live, MEMBERSHIPS, {"groupId": group}) as subscriber:
        await add_members(live.elsewhere, group, [anna])
        [added] = await subscriber.take(1)
    assert (added["action"], added["contactId"]) == ("ADDED", anna)


async def test_a_reconnecting_client_resumes_after_its_last_event(live: Live):
    group = await new_group_id(live.server, name="Energiecafé")
    contacts = await new_contact_ids(live.server, "A", "B", "C", "D", "E")
    async with subscribed(live, MEMBERSHIPS, {"groupId": group}) as subscriber:
        await add_members(live.server, group, contacts[:2])
        seen = await subscriber.take(2)
    # Offline: three more contacts in two changes, the last through another process.
    await add_members(live.server, group, contacts[2:4])
    await remove_members(live.elsewhere, group, contacts[:1])
    last = seen[-1]["eventId"]
    assert seen[0]["eventId"] == last, "one change of two contacts: one event"
    async with subscribed(live, MEMBERSHIPS, {"groupId": group, "after": last}) as again:
        missed = await again.take(3)
        await add_members(live.server, group, contacts[4:])
        [live_one] = await again.take(1)
        await again.nothing_more()
    assert [(m["action"], m["contactId"]) for m in missed] == [
        ("ADDED", contacts[2]),
        ("ADDED", contacts[3]),
        ("REMOVED", contacts[0]),
    ]
    assert last < missed[0]["eventId"] == missed[1]["eventId"] < missed[2]["eventId"]
    assert live_one["contactId"] == contacts[4]
    every = [m["eventId"] for m in (*seen, *missed, live_one)]
    # Resuming is per event: each event's messages came once, together, in commit order.
    assert list(dict.fromkeys(every)) == await outbox_ids(
        live.app, group, ("members.added", "members.removed")
    )
    assert every == sorted(every)


async def test_a_bulk_change_is_one_event_sent_as_a_message_per_contact(live: Live):
    group = await new_group_id(live.server, name="Zonnedak")
    anna, bram, cor = await new_contact_ids(live.server, "Jansen", "Bakker", "Visser")
    async with subscribed(live, MEMBERSHIPS, {"groupId": group}) as subscriber:
        await add_members(live.server, group, [anna, bram, cor])
        got = await subscriber.take(3)
        await subscriber.nothing_more()
    assert [(m["action"], m["contactId"]) for m in got] == [
        ("ADDED", anna),
        ("ADDED", bram),
        ("ADDED", cor),
    ]
    assert [m["contact"]["lastName"] for m in got] == ["Jansen", "Bakker", "Visser"]
    assert {m["source"] for m in got} == {"BULK"}
    assert {m["group"]["name"] for m in got} == {"Zonnedak"}
    assert [m["eventId"] for m in got] == await outbox_ids(live.app, group, ("members.added",)) * 3


async def test_more_than_a_thousand_contacts_are_an_event_per_thousand(live: Live):
    count = 1002
    group = await new_group_id(live.server, name="Iedereen")
    async with live.app.state.sessions() as session, session.begin():
        ids = await session.scalars(
            insert(Contact).returning(Contact.id),
            [{"last_name": f"Lid {n}"} for n in range(count)],
        )
        contact_ids = list(ids)
    async with subscribed(live, MEMBERSHIPS, {"groupId": group}) as subscriber:
        async with live.app.state.sessions() as session, session.begin():
            await add_members_in_domain(
                session, SYSTEM, _pk(group), contact_ids, MembershipSource.BULK
            )
        got = await subscriber.take(count)
        await subscriber.nothing_more()
    assert sorted(_pk(m["contactId"]) for m in got) == sorted(contact_ids)
    first, second = await outbox_ids(live.app, group, ("members.added",))
    assert [m["eventId"] for m in got] == [first] * 1000 + [second] * 2


async def test_a_client_that_does_not_read_holds_up_no_one_and_loses_nothing(live: Live):
    count = 1500
    group = await new_group_id(live.server, name="Nieuwsbrief")
    async with live.app.state.sessions() as session, session.begin():
        ids = await session.scalars(
            insert(Contact).returning(Contact.id),
            [{"last_name": f"Lid {n}", "first_name": "X" * 200} for n in range(count)],
        )
        contact_ids = list(ids)
    # The slow client's library stops reading after two messages, so the server's writes
    # to it back up in the socket.
    async with (
        subscribed(live, MEMBERSHIPS, {"groupId": group}, max_queue=2) as slow,
        subscribed(live, MEMBERSHIPS, {"groupId": group}) as fast,
    ):
        async with live.app.state.sessions() as session, session.begin():
            # One change per contact: more events than the feed keeps waiting for a client
            # (a bulk change of them all would be two events).
            for contact_id in contact_ids:
                await add_members_in_domain(
                    session, SYSTEM, _pk(group), [contact_id], MembershipSource.BULK
                )
        started = time.monotonic()
        fast_got = await fast.take(count)
        fast_seconds = time.monotonic() - started
        slow_got = await slow.take(count)
    assert [m["contactId"] for m in fast_got] == [m["contactId"] for m in slow_got]
    assert len({m["eventId"] for m in slow_got}) == count
    assert fast_seconds < WAIT * 2


async def test_subscriptions_refuse_what_a_query_would(live: Live):
    group = await new_group_id(live.server, name="Bestaand")
    # A token narrowed to contacts only may not watch groups.
    created = await live.server.data(
        """mutation { createApiToken(input: {name: "alleen contacten", permissions:
        ["contacts.view"], expiresAt: null}) { secret errors { code } } }"""
    )
    narrowed = created["createApiToken"]["secret"]
    cases = [
        (MEMBERSHIPS, {"groupId": group}, narrowed, "FORBIDDEN"),
        (MEMBERSHIPS, {"groupId": "R3JvdXA6OTk5OTk="}, live.token, "NOT_FOUND"),
        (MEMBERSHIPS, {"groupId": "nonsense"}, live.token, "INVALID_ID"),
        (MEMBERSHIPS, {"groupId": group, "after": -1}, live.token, "INVALID"),
        (GROUPS, {"groupId": "R3JvdXA6OTk5OTk="}, live.token, "NOT_FOUND"),
        (COSTLY, {"groupId": group}, live.token, "LIMIT_EXCEEDED"),
    ]
    for document, variables, token, code in cases:
        message = await first_error(live, document, variables, token)
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert [e["extensions"]["code"] for e in errors] == [code], (variables, message)


async def test_several_serve_processes_deliver_each_event_once(
    live_env: dict[str, str], app_factory: Callable[..., Any]
):
    """`serve --workers 2`: two processes answer, and their outbox workers share the
    deliveries (SKIP LOCKED on PostgreSQL, one writer at a time on SQLite): every new
    member gets one e-mail, caught and logged."""
    app = app_factory()
    _, token = await make_user(app, "Sanne de Vries", "sanne@example.coop", admin=True)
    env = {
        **live_env,
        "GRAPHQL_API_OUTBOX_IN_PROCESS_WORKER": "true",
        "GRAPHQL_API_OUTBOX_POLL_SECONDS": "0.1",
        "GRAPHQL_API_SMTP_CATCH": "true",
    }
    with serving(env, "--workers", "2") as (url, process):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            client = GraphQLClient(http, token)
            template = await new_template_id(client)
            group = await new_group_id(
                client,
                name="Nieuwsbrief",
                emailOnNewMember=True,
                newMemberEmailTemplateId=template,
            )
            contacts = await new_contact_ids(
                client, *(f"Lid {n}" for n in range(20)), email="lid@example.coop"
            )
            for contact in contacts:
                await add_members(client, group, [contact])
            for _ in range(200):
                async with app.state.sessions() as session:
                    mails = select(Delivery.status, Delivery.attempts).where(
                        Delivery.plugin == "email_notifications"
                    )
                    states = list(await session.execute(mails))
                if len(states) == 20 and all(s == DeliveryStatus.DELIVERED for s, _ in states):
                    break
                await asyncio.sleep(0.1)
    _, log = process.communicate()
    assert sorted(states) == [(DeliveryStatus.DELIVERED, 1)] * 20, "each claimed once"
    assert log.count("E-mail caught, not sent: to lid@example.coop") == 20
    assert len(set(re.findall(r"Started server process \[(\d+)\]", log))) == 2, log
