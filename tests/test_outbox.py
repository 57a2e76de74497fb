"""The outbox: events commit with their change, the worker delivers each at least once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update

from graphql_api.graphql_base.relay import decode_id
from graphql_api.kernel.db import utcnow
from graphql_api.notifications.models import Delivery, DeliveryStatus, OutboxEvent
from graphql_api.notifications.outbox import Event, SkipDelivery
from graphql_api.plugin import hookimpl
from graphql_api.testing import (
    ADD_MEMBERS,
    GraphQLClient,
    add_members,
    make_user,
    make_worker,
    new_contact_ids,
    new_group_id,
    refused,
)

RETRY = """mutation($id: ID!) {
  retryDelivery(id: $id) { delivery { status attempts } errors { field code } } }"""
DELIVERIES = """query($s: DeliveryStatus) { notificationDeliveries(status: $s, first: 100) {
  totalCount nodes { id plugin eventType status attempts lastError deliveredAt } } }"""


class Recorder:
    """A plugin that records what it is handed, and fails or skips on request."""

    __name__ = "recorder"

    def __init__(self) -> None:
        self.received: list[tuple[int, Event]] = []
        self.fail: Exception | None = None
        self.delay = 0.0

    @hookimpl
    def event_subscriptions(self) -> list[str]:
        return ["members.added", "group.created"]

    @hookimpl
    async def deliver(self, event: Event, delivery_id: int) -> None:
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        self.received.append((delivery_id, event))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def setup(app_factory: Any, recorder: Recorder) -> Any:
    app = app_factory(plugins=[recorder], outbox_retry_base_seconds=0, outbox_max_attempts=3)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    _, token = await make_user(app, "Admin", "admin@example.coop", admin=True)
    yield app, GraphQLClient(http, token)
    await http.aclose()


async def statuses(app: Any) -> Counter:
    async with app.state.sessions() as session:
        return Counter(await session.scalars(select(Delivery.status)))


async def test_events_commit_with_the_change_and_are_delivered(setup: Any, recorder: Recorder):
    app, client = setup
    group = await new_group_id(client, name="Nieuwsbrief")
    contacts = await new_contact_ids(client, "Aa", "Bb")
    unknown = "Q29udGFjdDo5OTk="
    # An unknown contact refuses the whole call: no event, no delivery.
    await refused(app, client, ADD_MEMBERS, {"groupId": group, "contactIds": [*contacts, unknown]})
    assert await statuses(app) == Counter({DeliveryStatus.PENDING: 1}), "only group.created"
    await add_members(client, group, contacts)
    await add_members(client, group, contacts)  # existing members: no new events
    assert await statuses(app) == Counter({DeliveryStatus.PENDING: 2}), "one event per group"

    assert await make_worker(app).run_until_idle() == 2
    kinds = sorted(event.type for _, event in recorder.received)
    assert kinds == ["group.created", "members.added"]
    [added] = [e for _, e in recorder.received if e.type == "members.added"]
    assert added.data["group"]["name"] == "Nieuwsbrief"
    assert added.data["source"] == "BULK"
    assert added.data["contactIds"] == sorted(decode_id(c, "Contact", ["id"]) for c in contacts)
    data = await client.data(DELIVERIES, {"s": "DELIVERED"})
    assert data["notificationDeliveries"]["totalCount"] == 2
    assert {n["eventType"] for n in data["notificationDeliveries"]["nodes"]} == {
        "group.created",
        "members.added",
    }
    assert all(
        n["attempts"] == 1 and n["deliveredAt"] for n in data["notificationDeliveries"]["nodes"]
    )
    assert await make_worker(app).run_until_idle() == 0, "each delivery is handed over once"


async def test_failures_back_off_then_die_and_can_be_retried(setup: Any, recorder: Recorder):
    app, client = setup
    await new_group_id(client, name="Nieuwsbrief")
    recorder.fail = ConnectionError("mail server down")
    for _attempt in (1, 2):
        assert await make_worker(app).run_once() == 1
        assert await statuses(app) == Counter({DeliveryStatus.FAILED: 1})
    assert await make_worker(app).run_once() == 1
    data = await client.data(DELIVERIES, {"s": "DEAD"})
    [dead] = data["notificationDeliveries"]["nodes"]
    assert dead["attempts"] == 3 and dead["lastError"] == "ConnectionError: mail server down"
    async with app.state.sessions() as session:
        errors = await session.scalar(select(Delivery.errors))
    assert [e["attempt"] for e in errors] == [1, 2, 3]

    recorder.fail = None
    retried = await client.data(RETRY, {"id": dead["id"]})
    assert retried["retryDelivery"] == {
        "delivery": {"status": "PENDING", "attempts": 0},
        "errors": [],
    }
    assert await make_worker(app).run_until_idle() == 1
    assert len(recorder.received) == 1
    again = await refused(app, client, RETRY, {"id": dead["id"]})
    assert again == [{"field": ["id"], "code": "INVALID"}]


async def due_now(app: Any) -> None:
    """Make every delivery due, as if its backoff had passed."""
    async with app.state.sessions() as session, session.begin():
        await session.execute(update(Delivery).values(next_attempt_at=Delivery.created_at))


async def test_the_retry_delay_doubles_each_attempt_with_jitter_until_the_delivery_dies(
    setup: Any, recorder: Recorder
):
    """Attempt n fails and waits base * 2**(n-1) * (1 + random()/2): between 1 and 1.5 times
    the doubled delay; attempt outbox_max_attempts fails for good."""
    app, client = setup
    await new_group_id(client, name="Nieuwsbrief")
    recorder.fail = ConnectionError("mail server down")
    base, attempts = 3600, 5
    worker = make_worker(app, outbox_retry_base_seconds=base, outbox_max_attempts=attempts)
    for attempt in range(1, attempts):
        await due_now(app)
        before = utcnow()
        assert await worker.run_once() == 1
        after = utcnow()
        async with app.state.sessions() as session:
            delivery = await session.scalar(select(Delivery))
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, attempt)
        delay = timedelta(seconds=base * 2 ** (attempt - 1))
        assert before + delay <= delivery.next_attempt_at <= after + delay * 1.5, attempt
    assert await worker.run_once() == 0, "not due before its delay"

    await due_now(app)
    assert await worker.run_once() == 1
    async with app.state.sessions() as session:
        delivery = await session.scalar(select(Delivery))
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DEAD, attempts)
    assert [e["attempt"] for e in delivery.errors] == [1, 2, 3, 4, 5]
    await due_now(app)
    assert await worker.run_once() == 0, "a dead delivery is not tried again"
    assert recorder.received == []


async def test_backoff_waits_before_the_next_attempt(setup: Any, recorder: Recorder):
    app, client = setup
    await new_group_id(client, name="Nieuwsbrief")
    recorder.fail = RuntimeError("no")
    assert await make_worker(app, outbox_retry_base_seconds=60).run_once() == 1
    assert await make_worker(app).run_once() == 0, "not due for about a minute"


async def test_skips_and_timeouts(setup: Any, recorder: Recorder):
    app, client = setup
    await new_group_id(client, name="Nieuwsbrief")
    recorder.fail = SkipDelivery("contact has no e-mail address")
    await make_worker(app).run_once()
    data = await client.data(DELIVERIES, {"s": "SKIPPED"})
    assert (
        data["notificationDeliveries"]["nodes"][0]["lastError"] == "contact has no e-mail address"
    )

    recorder.fail, recorder.delay = None, 1.0
    await new_group_id(client, name="Traag")
    await make_worker(app, outbox_handler_timeout_seconds=0.05).run_once()
    data = await client.data(DELIVERIES, {"s": "FAILED"})
    assert data["notificationDeliveries"]["nodes"][0]["lastError"] == "timed out after 0.05 s"


async def test_a_crashed_worker_loses_nothing(setup: Any, recorder: Recorder):
    app, client = setup
    await new_group_id(client, name="Nieuwsbrief")
    crashed = make_worker(app, outbox_lease_seconds=60)
    assert len(await crashed._claim()) == 1  # claimed, then the process died
    assert await make_worker(app).run_once() == 0, "leased to the crashed worker"
    async with app.state.sessions() as session, session.begin():
        await session.execute(
            update(Delivery).values(lease_until=Delivery.created_at)
        )  # lease over
    assert await make_worker(app).run_until_idle() == 1
    [(_delivery_id, _)] = recorder.received
    data = await client.data(DELIVERIES, {"s": "DELIVERED"})
    assert data["notificationDeliveries"]["nodes"][0]["attempts"] == 2


async def test_two_workers_deliver_each_delivery_once(setup: Any, recorder: Recorder):
    app, client = setup
    group = await new_group_id(client, name="Groot")
    contacts = await new_contact_ids(client, *[f"C{i}" for i in range(60)])
    for start in range(0, 60, 2):  # one event per call: 30, and the group's
        await add_members(client, group, contacts[start : start + 2])
    recorder.delay = 0.001
    first, second = make_worker(app, outbox_batch_size=4), make_worker(app, outbox_batch_size=4)
    counts = await asyncio.gather(first.run_until_idle(), second.run_until_idle())
    delivered = Counter(delivery_id for delivery_id, _ in recorder.received)
    assert sum(counts) == 31 and len(delivered) == 31
    assert set(delivered.values()) == {1}
    assert await statuses(app) == Counter({DeliveryStatus.DELIVERED: 31})


async def test_only_admins_see_deliveries(setup: Any):
    app, client = setup
    _, token = await make_user(app, "Anna", "anna@example.coop")
    body = await GraphQLClient(client.http, token).execute(DELIVERIES)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_conversion_mails_nobody_as_new(setup: Any, recorder: Recorder):
    """The members stay the same, only explicit now: no entry, no members.added."""
    app, client = setup
    base = await new_group_id(client, name="Basis")
    contacts = await new_contact_ids(client, "Aa", "Bb")
    await add_members(client, base, contacts)
    union = await new_group_id(client, name="Samen", composedOfIds=[base])
    await make_worker(app).run_until_idle()
    entered = [
        e
        for _, e in recorder.received
        if e.type.startswith("members.") and e.data["group"]["name"] == "Samen"
    ]
    assert [(e.type, e.data["source"]) for e in entered] == [("members.added", "DERIVED")]
    assert len(entered[0].data["contactIds"]) == 2, "one event for both entries"
    recorder.received.clear()
    await client.data(
        "mutation($g: ID!) { convertToStatic(groupId: $g) { errors { code } } }", {"g": union}
    )
    await make_worker(app).run_until_idle()
    assert [e.type for _, e in recorder.received if e.type.startswith("members.")] == []


PURGE_CASES = {
    # The group whose group.created event it is: (its delivery's status, days since it was
    # delivered, whether the purge keeps it). Retention is 30 days.
    "Oud afgeleverd": (DeliveryStatus.DELIVERED, 31, False),
    "Oud overgeslagen": (DeliveryStatus.SKIPPED, 31, False),
    "Recent afgeleverd": (DeliveryStatus.DELIVERED, 29, True),
    "Recent overgeslagen": (DeliveryStatus.SKIPPED, 29, True),
    "Wachtend": (DeliveryStatus.PENDING, 31, True),
    "Mislukt": (DeliveryStatus.FAILED, 31, True),
    "Dood": (DeliveryStatus.DEAD, 31, True),
    # Delivered long ago to the recorder, but still pending for another plugin.
    "Gedeeld": (DeliveryStatus.DELIVERED, 31, False),
}


async def test_purge_forgets_old_delivered_and_skipped_deliveries_and_their_events_only(
    setup: Any,
):
    """Every event is 40 days old but "Jong", which has no delivery left."""
    app, client = setup
    for name in [*PURGE_CASES, "Jong"]:
        await new_group_id(client, name=name)
    now = utcnow()
    async with app.state.sessions() as session, session.begin():
        events = {e.data["group"]["name"]: e.id for e in await session.scalars(select(OutboxEvent))}
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id != events["Jong"])
            .values(occurred_at=now - timedelta(days=40))
        )
        await session.execute(delete(Delivery).where(Delivery.event_id == events["Jong"]))
        for name, (status, days, _) in PURGE_CASES.items():
            await session.execute(
                update(Delivery)
                .where(Delivery.event_id == events[name])
                .values(status=status, delivered_at=now - timedelta(days=days))
            )
        session.add(Delivery(event_id=events["Gedeeld"], plugin="ander", errors=[]))

    await make_worker(app, outbox_retention_days=30).purge()
    names = {event_id: name for name, event_id in events.items()}
    async with app.state.sessions() as session:
        kept_events = {names[i] for i in await session.scalars(select(OutboxEvent.id))}
        rows = await session.execute(select(Delivery.event_id, Delivery.plugin, Delivery.status))
        kept_deliveries = {(names[event_id], plugin, status) for event_id, plugin, status in rows}
    assert kept_deliveries == {
        (name, "recorder", status) for name, (status, _, kept) in PURGE_CASES.items() if kept
    } | {("Gedeeld", "ander", DeliveryStatus.PENDING)}
    assert kept_events == {name for name, (_, _, kept) in PURGE_CASES.items() if kept} | {
        "Gedeeld",
        "Jong",
    }


@pytest.mark.parametrize(
    ("delivery_id", "code"),
    [
        ("garbage", "INVALID_ID"),
        ("R3JvdXA6MQ==", "INVALID_ID"),
        ("Tm90aWZpY2F0aW9uRGVsaXZlcnk6OTk5", "NOT_FOUND"),
    ],
)
async def test_retry_of_a_bad_id_is_refused_and_changes_nothing(
    setup: Any, delivery_id: str, code: str
):
    app, client = setup
    await new_group_id(client, name="Nieuwsbrief")
    errors = await refused(app, client, RETRY, {"id": delivery_id})
    assert errors == [{"field": ["id"], "code": code}]
