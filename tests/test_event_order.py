"""The order of outbox events under concurrent commits, on PostgreSQL: what
``notifications.outbox`` promises and the live feed (``notifications.feed``, which GraphQL
subscriptions follow) relies on.

The promise (outbox.py, docs/http.md "Commit order"): events are numbered in commit
order. A transaction writes its events when it commits, holding a lock that orders
committing writers until its commit, so a reader following the table by id never passes
an event that commits later with a smaller id. So:

- a reader polling the table by id never sees an id appear below one it saw before;
- a follower of the feed gets every event, once, ids rising;
- per group and contact, what it gets alternates ``members.added`` and
  ``members.removed``, starting with an add, and ends as the group's members are: no
  removal arrives before the add it undoes, for static members as for the derived
  members of a composite.

Many requests race: adds and removes of the same contacts to the same static group, and
to other groups, all read by a composite (whose derived events come in the same
transactions). To make the race show on every run, each transaction that wrote events
waits a few milliseconds between writing them and committing (a ``before_commit`` hook
of the test's engine, after the outbox's own): without the ordering lock, a later writer
then often commits first.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from graphql_api.graphql_base.relay import parse_global_id
from graphql_api.notifications.models import OutboxEvent
from graphql_api.notifications.outbox import FEED_EVENTS
from graphql_api.testing import (
    ADD_MEMBERS,
    REMOVE_MEMBERS,
    GraphQLClient,
    make_user,
    new_contact_ids,
    new_group_id,
)

TOGGLES = 6
"""Add-then-remove rounds of each racing writer."""
WAIT = 20.0
"""Seconds the feed may take to hand on every event; far more than it does."""
MEMBERS = """query($id: ID!) { group(id: $id) { members(first: 100) { nodes { id } } } }"""


@pytest.fixture
def postgresql(database_url: str) -> None:
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("commits race on PostgreSQL; SQLite has one writer at a time")


@pytest.fixture
def slow_commits(app: Any, postgresql: None) -> Iterator[None]:
    """Transactions of ``app`` that wrote events wait 0-15 ms before they commit."""
    engine = app.state.engine.sync_engine
    rng = random.Random(7)

    def hold(session: Session) -> None:
        if session.info.get("outbox_committed") and session.get_bind() is engine:
            session.execute(text("SELECT pg_sleep(:s)"), {"s": rng.random() * 0.015})

    event.listen(Session, "before_commit", hold)
    yield
    event.remove(Session, "before_commit", hold)


def pk(global_id: str) -> int:
    parsed = parse_global_id(global_id)
    assert parsed is not None
    return parsed[1]


async def poll_ids(app: Any, seen: list[int], stop: asyncio.Event) -> list[str]:
    """Follow the table by id as a reader does, until ``stop``: the ids in the order they
    became visible, and every id that appeared below one seen before."""
    inversions = []
    known: set[int] = set()
    last = 0
    async with app.state.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        while True:
            stopping = stop.is_set()
            visible = list(
                await connection.scalars(select(OutboxEvent.id).order_by(OutboxEvent.id))
            )
            for event_id in visible:
                if event_id in known:
                    continue
                if event_id < last:
                    inversions.append(f"{event_id} became visible after {last}")
                known.add(event_id)
                seen.append(event_id)
            last = max([last, *visible])
            if stopping:
                return inversions
            await asyncio.sleep(0.002)


async def test_events_are_numbered_in_commit_order_and_followed_so(app: Any, slow_commits: None):
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        client = GraphQLClient(http, token)
        contacts = await new_contact_ids(client, *[f"Lid{i}" for i in range(4)])
        groups = [await new_group_id(client, name=f"Groep {i}") for i in range(3)]
        composite = await new_group_id(client, name="Samen", composedOfIds=groups)
        async with app.state.sessions() as session:
            start = await session.scalar(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()))

        # Racing writers: two on the same group and contacts, the others elsewhere.
        pairs = [
            (groups[0], contacts[0]),
            (groups[0], contacts[0]),
            (groups[0], contacts[1]),
            (groups[1], contacts[0]),
            (groups[1], contacts[2]),
            (groups[2], contacts[3]),
            (groups[2], contacts[3]),
        ]

        async def toggle(group: str, contact: str) -> None:
            variables = {"groupId": group, "contactIds": [contact]}
            for _ in range(TOGGLES):
                for mutation in (ADD_MEMBERS, REMOVE_MEMBERS):
                    data = await client.data(mutation, variables)
                    assert next(iter(data.values()))["errors"] == [], data

        followed: list[Any] = []
        expected = {"count": -1}
        caught_up = asyncio.Event()

        async def follow() -> None:
            async for item in app.state.events.follow(start or 0, FEED_EVENTS):
                followed.append(item)
                if len(followed) == expected["count"]:
                    caught_up.set()

        following = asyncio.create_task(follow())
        seen: list[int] = []
        stop = asyncio.Event()
        polling = asyncio.create_task(poll_ids(app, seen, stop))
        try:
            await asyncio.sleep(0.2)  # the follower is reading before the race starts
            await asyncio.gather(*(toggle(group, contact) for group, contact in pairs))
            # One more, last, so the final state is known: Lid0 in Groep 0.
            await client.data(ADD_MEMBERS, {"groupId": groups[0], "contactIds": [contacts[0]]})
            stop.set()
            inversions = await polling
            async with app.state.sessions() as session:
                written = list(
                    await session.scalars(
                        select(OutboxEvent.id)
                        .where(OutboxEvent.id > (start or 0))
                        .order_by(OutboxEvent.id)
                    )
                )
            expected["count"] = len(written)
            if len(followed) < len(written):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(caught_up.wait(), WAIT)
        finally:
            stop.set()
            following.cancel()
            polling.cancel()
            await app.state.events.close()

        # A reader by id never saw an event commit after a later-numbered one.
        assert not inversions, f"ids not in commit order: {inversions[:10]}"
        # The feed handed on every event, once, in id order.
        ids = [item.id for item in followed]
        missed = sorted(set(written) - set(ids))
        assert not missed, f"the feed never handed on {len(missed)} events: {missed[:10]}"
        assert ids == written, "the feed handed on events out of order, or twice"
        assert len(written) > 4 * TOGGLES * len(pairs) // 2, len(written)

        # Per group and contact, adds and removes alternate, first an add, and the last
        # one is the state the group is in.
        sequences: dict[tuple[int, int], list[str]] = defaultdict(list)
        for item in followed:
            if item.type in ("members.added", "members.removed"):
                for contact_id in item.data["contactIds"]:
                    key = (item.data["group"]["id"], contact_id)
                    sequences[key].append(item.type.removeprefix("members."))
        wrong = {
            key: actions
            for key, actions in sequences.items()
            if actions
            != ["added", "removed"] * (len(actions) // 2) + ["added"] * (len(actions) % 2)
        }
        assert not wrong, f"a removal before the add it undoes: {wrong}"
        for group in [*groups, composite]:
            data = await client.data(MEMBERS, {"id": group})
            members = {pk(node["id"]) for node in data["group"]["members"]["nodes"]}
            last_added = {
                contact
                for (group_id, contact), actions in sequences.items()
                if group_id == pk(group) and actions[-1] == "added"
            }
            assert members == last_added, (group, members, last_added)
        assert {pk(contacts[0])} == {
            c for (g, c), a in sequences.items() if g == pk(composite) and a[-1] == "added"
        }
