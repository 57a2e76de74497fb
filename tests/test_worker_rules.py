"""The outbox worker (graphql_api.notifications.worker) on the test database, handing
events to a ``Deliverer`` of its own: what is due and claimed, in which order and how many
at a time, the lease, the outcome of each attempt (delivered, skipped, failed with backoff,
dead), the service loop, and the purge of what is done."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from graphql_api.kernel.db import create_engine, create_sessionmaker, utcnow
from graphql_api.notifications.models import Delivery, DeliveryStatus, OutboxEvent
from graphql_api.notifications.outbox import Event, SkipDelivery
from graphql_api.notifications.worker import MAX_ERROR_LENGTH, Worker
from graphql_api.settings import Settings

Sessions = async_sessionmaker[AsyncSession]
PENDING, FAILED, DELIVERED = DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.DELIVERED
DEAD, SKIPPED = DeliveryStatus.DEAD, DeliveryStatus.SKIPPED


class Courier:
    """A ``Deliverer`` (the plugin manager is one): records every hand-over; a plugin's
    ``trouble`` is raised, or slept for when it is a number of seconds."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, Event, int]] = []
        self.trouble: dict[str, BaseException | float] = {}
        self.during: Any = None
        """Awaited with the delivery id during each hand-over, to look at the outbox then."""
        self.writes = False
        """Whether the handler writes (an event ``handler.wrote``) through its session."""

    async def deliver(
        self, plugin: str, event: Event, delivery_id: int, session: AsyncSession
    ) -> None:
        assert isinstance(session, AsyncSession)
        self.handed.append((plugin, event, delivery_id))
        if self.during is not None:
            await self.during(delivery_id)
        if self.writes:
            session.add(
                OutboxEvent(type="handler.wrote", data={"by": plugin}, occurred_at=utcnow())
            )
            await session.flush()
        trouble = self.trouble.get(plugin)
        if isinstance(trouble, float):
            await asyncio.sleep(trouble)
        elif trouble is not None:
            raise trouble


@pytest.fixture
def courier() -> Courier:
    return Courier()


def worker(sessions: Sessions, courier: Courier, **settings: Any) -> Worker:
    values = {"outbox_retry_base_seconds": 10.0, "outbox_max_attempts": 3, **settings}
    return Worker(sessions, courier, Settings(**values))


EVENT_DATA = {"contactIds": [7, 8], "group": {"name": "Buurt"}}
"""A members.added event's data, in part (plugin API 2: contact ids, not one)."""


async def outbox(sessions: Sessions, *plugins: str, **delivery: Any) -> list[int]:
    """One event, and a delivery of it to each plugin (``delivery``: column values); the
    deliveries' ids."""
    now = utcnow()
    async with sessions() as session, session.begin():
        event = OutboxEvent(type="members.added", data=EVENT_DATA, occurred_at=now)
        session.add(event)
        await session.flush()
        rows = [
            Delivery(
                event_id=event.id,
                plugin=plugin,
                **{"next_attempt_at": now, "created_at": now, "errors": [], **delivery},
            )
            for plugin in plugins
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def deliveries(sessions: Sessions) -> dict[int, Delivery]:
    async with sessions() as session:
        return {d.id: d for d in await session.scalars(select(Delivery).order_by(Delivery.id))}


async def statuses(sessions: Sessions) -> list[DeliveryStatus]:
    return [d.status for d in (await deliveries(sessions)).values()]


async def test_a_due_delivery_is_handed_over_once_and_delivered(
    sessions: Sessions, courier: Courier
):
    [first, second] = await outbox(sessions, "mail", "hook")
    before = utcnow()
    assert await worker(sessions, courier).run_once() == 2
    after = utcnow()
    assert [(plugin, delivery_id) for plugin, _, delivery_id in courier.handed] == [
        ("mail", first),
        ("hook", second),
    ]
    event = courier.handed[0][1]
    async with sessions() as session:
        stored = await session.scalar(select(OutboxEvent))
    assert stored is not None
    assert event == Event(stored.id, "members.added", stored.occurred_at, stored.data)
    assert event.data == EVENT_DATA
    for delivery in (await deliveries(sessions)).values():
        assert (delivery.status, delivery.attempts, delivery.lease_until) == (DELIVERED, 1, None)
        assert delivery.last_error is None and delivery.errors == []
        assert delivery.delivered_at is not None and before <= delivery.delivered_at <= after
    assert await worker(sessions, courier).run_once() == 0
    assert len(courier.handed) == 2


async def test_only_due_unleased_pending_or_failed_deliveries_are_claimed(
    sessions: Sessions, courier: Courier
):
    now = utcnow()
    due = [
        *await outbox(sessions, "pending"),
        *await outbox(sessions, "failed", status=FAILED, attempts=1),
        *await outbox(sessions, "lease-over", lease_until=now - timedelta(seconds=1)),
    ]
    await outbox(sessions, "later", next_attempt_at=now + timedelta(minutes=1))
    await outbox(sessions, "leased", lease_until=now + timedelta(minutes=1))
    for status in (DELIVERED, DEAD, SKIPPED):
        await outbox(sessions, status.lower(), status=status)
    assert await worker(sessions, courier).run_until_idle() == 3
    assert sorted(delivery_id for _, _, delivery_id in courier.handed) == due
    assert [p for p, _, _ in courier.handed] == ["pending", "failed", "lease-over"]
    attempts = {d.plugin: d.attempts for d in (await deliveries(sessions)).values()}
    assert attempts["failed"] == 2 and attempts["pending"] == 1


async def test_deliveries_are_claimed_oldest_first_a_batch_at_a_time(
    sessions: Sessions, courier: Courier
):
    now = utcnow()
    ids = []
    for seconds_ago in (1, 30, 20, 10):
        ids += await outbox(sessions, "mail", next_attempt_at=now - timedelta(seconds=seconds_ago))
    batch = worker(sessions, courier, outbox_batch_size=3)
    assert await batch.run_once() == 3
    assert [delivery_id for _, _, delivery_id in courier.handed] == ids[:3]
    assert await batch.run_once() == 1
    assert await batch.run_once() == 0
    assert [delivery_id for _, _, delivery_id in courier.handed] == ids


async def test_run_until_idle_counts_every_batch(sessions: Sessions, courier: Courier):
    for _ in range(5):
        await outbox(sessions, "mail")
    assert await worker(sessions, courier, outbox_batch_size=2).run_until_idle() == 5
    assert await worker(sessions, courier).run_until_idle() == 0


async def test_a_claimed_delivery_is_leased_to_its_worker(sessions: Sessions, courier: Courier):
    [delivery_id] = await outbox(sessions, "mail")
    seen: list[tuple[datetime | None, int, int]] = []

    async def look(claimed: int) -> None:
        async with sessions() as session:
            row = await session.get(Delivery, claimed)
            assert row is not None
            other = await worker(sessions, Courier()).run_once()
            seen.append((row.lease_until, row.attempts, other))

    courier.during = look
    before = utcnow()
    assert await worker(sessions, courier, outbox_lease_seconds=60).run_once() == 1
    after = utcnow()
    [(lease_until, attempts, other)] = seen
    assert lease_until is not None
    assert before + timedelta(seconds=60) <= lease_until <= after + timedelta(seconds=60)
    assert attempts == 1, "claiming counts as an attempt"
    assert other == 0, "another worker does not take a leased delivery"
    assert (await deliveries(sessions))[delivery_id].lease_until is None


async def test_a_skipped_delivery_is_done_with_its_reason(sessions: Sessions, courier: Courier):
    [skipped, delivered] = await outbox(sessions, "mail", "hook")
    courier.trouble["mail"] = SkipDelivery("contact has no e-mail address")
    assert await worker(sessions, courier).run_once() == 2
    rows = await deliveries(sessions)
    assert (rows[skipped].status, rows[skipped].last_error) == (
        SKIPPED,
        "contact has no e-mail address",
    )
    assert rows[skipped].delivered_at is not None and rows[skipped].lease_until is None
    assert (rows[delivered].status, rows[delivered].last_error) == (DELIVERED, None)


async def handler_writes(sessions: Sessions) -> list[str]:
    """The plugins whose handler's writes were committed."""
    async with sessions() as session:
        wrote = select(OutboxEvent.data).where(OutboxEvent.type == "handler.wrote")
        return sorted(data["by"] for data in await session.scalars(wrote))


async def test_a_handlers_writes_commit_only_with_its_delivery(
    sessions: Sessions, courier: Courier
):
    await outbox(sessions, "fine", "failing", "skipping")
    courier.writes = True
    courier.trouble = {"failing": RuntimeError("no"), "skipping": SkipDelivery("nothing to do")}
    assert await worker(sessions, courier).run_once() == 3
    assert await handler_writes(sessions) == ["fine"]
    assert {d.plugin: d.status for d in (await deliveries(sessions)).values()} == {
        "fine": DELIVERED,
        "failing": FAILED,
        "skipping": SKIPPED,
    }


async def test_a_delivery_taken_over_meanwhile_is_left_to_the_other_worker(
    sessions: Sessions, courier: Courier, caplog: pytest.LogCaptureFixture
):
    [taken, done] = await outbox(sessions, "mail", "hook")

    async def claimed_again(delivery_id: int) -> None:
        if delivery_id == taken:  # the lease ran out and another worker claimed it
            async with sessions() as session, session.begin():
                row = await session.get(Delivery, delivery_id)
                assert row is not None
                row.attempts += 1

    courier.during, courier.writes = claimed_again, True
    caplog.set_level(logging.WARNING, logger="graphql_api.worker")
    assert await worker(sessions, courier).run_once() == 2
    rows = await deliveries(sessions)
    assert (rows[taken].status, rows[taken].attempts, rows[taken].errors) == (PENDING, 2, [])
    assert (rows[taken].last_error, rows[taken].delivered_at) == (None, None)
    assert rows[done].status == DELIVERED
    assert await handler_writes(sessions) == ["hook"], "the taken-over attempt wrote nothing"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            f"delivery {taken} to mail was taken over by another worker; this attempt's "
            "writes are rolled back",
        )
    ]


async def test_a_delivery_done_meanwhile_is_not_done_again(sessions: Sessions, courier: Courier):
    [delivery_id] = await outbox(sessions, "mail")

    async def retired(claimed: int) -> None:
        async with sessions() as session, session.begin():
            row = await session.get(Delivery, claimed)
            assert row is not None
            row.status = DEAD

    courier.during, courier.writes = retired, True
    assert await worker(sessions, courier).run_once() == 1
    row = (await deliveries(sessions))[delivery_id]
    assert (row.status, row.last_error, row.delivered_at) == (DEAD, None, None)
    assert await handler_writes(sessions) == []


def _stamps(delivery: Delivery) -> tuple[float, datetime]:
    """Seconds from the failure to the next attempt, and the failure's moment."""
    failed_at = datetime.fromisoformat(delivery.errors[-1]["at"])
    assert failed_at.tzinfo is not None
    return (delivery.next_attempt_at - failed_at).total_seconds(), failed_at


async def test_a_failure_is_recorded_and_retried_after_a_doubling_delay_with_jitter(
    sessions: Sessions, courier: Courier, caplog: pytest.LogCaptureFixture
):
    [failing, fine] = await outbox(sessions, "mail", "hook")
    courier.trouble["mail"] = ConnectionError("mail server down")
    caplog.set_level(logging.WARNING, logger="graphql_api.worker")
    seed = 20_240_311
    for attempt in (1, 2, 3):
        random.seed(seed + attempt)
        jitter = 1 + random.random() / 2
        random.seed(seed + attempt)
        before = utcnow()
        assert await worker(sessions, courier).run_once() == (2 if attempt == 1 else 1)
        after = utcnow()
        row = (await deliveries(sessions))[failing]
        assert row.status == (DEAD if attempt == 3 else FAILED)
        assert (row.attempts, row.lease_until) == (attempt, None)
        assert row.last_error == "ConnectionError: mail server down"
        assert [e["attempt"] for e in row.errors] == list(range(1, attempt + 1))
        assert {e["error"] for e in row.errors} == {"ConnectionError: mail server down"}
        delay, failed_at = _stamps(row)
        assert before <= failed_at <= after
        expected = 10.0 * 2 ** (attempt - 1) * jitter
        assert delay == pytest.approx(expected, abs=1e-5)
        assert 10.0 * 2 ** (attempt - 1) <= delay < 15.0 * 2 ** (attempt - 1)
        async with sessions() as session, session.begin():
            due = await session.get(Delivery, failing)
            assert due is not None
            due.next_attempt_at = utcnow() - timedelta(seconds=1)
    assert (await deliveries(sessions))[fine].status == DELIVERED
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            f"delivery {failing} to mail failed (attempt 1): ConnectionError: mail server down",
        ),
        (
            "WARNING",
            f"delivery {failing} to mail failed (attempt 2): ConnectionError: mail server down",
        ),
        (
            "ERROR",
            f"delivery {failing} to mail failed (attempt 3): ConnectionError: mail server down",
        ),
    ]
    assert await worker(sessions, courier).run_once() == 0, "dead: not retried"


async def test_the_jitter_is_at_most_half_the_delay(sessions: Sessions, courier: Courier):
    await outbox(sessions, *[f"plugin-{i}" for i in range(12)])
    courier.trouble = {f"plugin-{i}": RuntimeError("no") for i in range(12)}
    assert await worker(sessions, courier).run_once() == 12
    delays = [_stamps(d)[0] for d in (await deliveries(sessions)).values()]
    assert all(10.0 <= delay < 15.0 for delay in delays), delays
    assert len({round(delay, 3) for delay in delays}) > 1, "failures do not retry in step"


async def test_a_slow_handler_times_out(sessions: Sessions, courier: Courier):
    [slow] = await outbox(sessions, "slow")
    courier.trouble["slow"] = 5.0
    started = asyncio.get_running_loop().time()
    assert await worker(sessions, courier, outbox_handler_timeout_seconds=0.05).run_once() == 1
    assert asyncio.get_running_loop().time() - started < 4.0
    row = (await deliveries(sessions))[slow]
    assert (row.status, row.last_error) == (FAILED, "timed out after 0.05 s")


async def test_a_long_error_is_cut(sessions: Sessions, courier: Courier):
    [failing] = await outbox(sessions, "mail")
    courier.trouble["mail"] = ValueError("x" * 3000)
    await worker(sessions, courier).run_once()
    row = (await deliveries(sessions))[failing]
    assert row.last_error == ("ValueError: " + "x" * 3000)[:MAX_ERROR_LENGTH]
    assert row.errors[0]["error"] == row.last_error


async def test_purge_forgets_what_is_done_past_the_retention(sessions: Sessions, courier: Courier):
    old = utcnow() - timedelta(days=31)
    recent = utcnow() - timedelta(days=29)
    await outbox(sessions, "a", "b", status=DELIVERED, delivered_at=old)
    await outbox(sessions, "a", status=SKIPPED, delivered_at=old)
    mixed = await outbox(sessions, "a", "b", status=DELIVERED, delivered_at=old)
    done_recent = await outbox(sessions, "a", status=DELIVERED, delivered_at=recent)
    dead_old = await outbox(sessions, "a", status=DEAD, delivered_at=old)
    async with sessions() as session, session.begin():
        await session.execute(
            Delivery.__table__.update()
            .where(Delivery.id == mixed[1])
            .values(status=FAILED, delivered_at=None)
        )
        events = list(await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))
        for stored in events:
            stored.occurred_at = old
        session.add(OutboxEvent(type="group.created", data={}, occurred_at=old))
        session.add(OutboxEvent(type="group.created", data={}, occurred_at=recent))
    await worker(sessions, courier).purge()
    assert sorted(await deliveries(sessions)) == sorted([mixed[1], *done_recent, *dead_old])
    async with sessions() as session:
        kept = list(await session.scalars(select(OutboxEvent.occurred_at).order_by(OutboxEvent.id)))
    assert len(kept) == 4, "events with deliveries left, and the recent one without"
    assert kept[-1] == recent


async def soon(read: Callable[[], Awaitable[Any]], expected: Any) -> None:
    """Wait up to five seconds for ``read()`` to give ``expected``."""
    for _ in range(500):
        if await read() == expected:
            return
        await asyncio.sleep(0.01)
    assert await read() == expected


def _rounds(engine: AsyncEngine) -> list[str]:
    """Claiming statements the engine sends from now on: one per round of the worker."""
    claims: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "attempts=(outbox_deliveries.attempts +" in statement:
            claims.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    return claims


async def test_the_service_loop_delivers_then_waits_and_stops_when_told(
    sessions: Sessions, engine: AsyncEngine, courier: Courier
):
    for _ in range(3):
        await outbox(sessions, "mail")
    stop = asyncio.Event()
    looping = asyncio.create_task(
        worker(sessions, courier, outbox_batch_size=1, outbox_poll_seconds=30).run_forever(stop)
    )
    await soon(lambda: statuses(sessions), [DELIVERED] * 3)
    assert len(courier.handed) == 3, "no wait between rounds while there is work"
    rounds = _rounds(engine)
    await asyncio.sleep(0.3)
    stop.set()
    async with asyncio.timeout(5):
        await looping
    assert len(rounds) <= 1, "idle: the next round waits for the poll interval"


async def test_the_service_loop_polls_for_new_work(
    sessions: Sessions, engine: AsyncEngine, courier: Courier
):
    stop = asyncio.Event()
    rounds = _rounds(engine)
    looping = asyncio.create_task(
        worker(sessions, courier, outbox_poll_seconds=0.05).run_forever(stop)
    )
    await asyncio.sleep(0.3)
    assert courier.handed == []
    assert 2 <= len(rounds) <= 10, "idle: a round every 0.05 s"
    await outbox(sessions, "mail")
    await soon(lambda: statuses(sessions), [DELIVERED])
    stop.set()
    async with asyncio.timeout(5):
        await looping
    assert await statuses(sessions) == [DELIVERED]


async def _loop_for(seconds: float, looping_worker: Worker) -> None:
    """Run the worker's loop for ``seconds``, then stop it (which must end it at once)."""
    stop = asyncio.Event()
    looping = asyncio.create_task(looping_worker.run_forever(stop))
    await asyncio.sleep(seconds)
    stop.set()
    async with asyncio.timeout(5):
        await looping


async def test_a_failing_round_is_logged_and_retried_after_the_poll_interval(
    tmp_path: Path, courier: Courier, caplog: pytest.LogCaptureFixture
):
    broken = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'no-tables.sqlite3'}")
    caplog.set_level(logging.ERROR, logger="graphql_api.worker")
    await _loop_for(0.3, worker(create_sessionmaker(broken), courier, outbox_poll_seconds=30))
    await broken.dispose()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "worker round failed; next try in 60 s")
    ]
    assert caplog.records[0].exc_info is not None, "a fault of its own: with its traceback"


async def test_an_unreachable_database_is_tried_again_ever_later_one_line_each(
    courier: Courier, caplog: pytest.LogCaptureFixture
):
    """The database is away (a closed port): each failed round waits twice as long as the
    one before, and says so in one line without a traceback."""
    away = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/nothing")
    caplog.set_level(logging.INFO, logger="graphql_api.worker")
    await _loop_for(1.0, worker(create_sessionmaker(away), courier, outbox_poll_seconds=0.01))
    await away.dispose()
    waits = [r.getMessage().rpartition("next try in ")[2] for r in caplog.records]
    assert waits[:6] == ["0.02 s", "0.04 s", "0.08 s", "0.16 s", "0.32 s", "0.64 s"]
    assert len(waits) <= 7, "without the backoff, hundreds of rounds"
    for record in caplog.records:
        assert record.levelname == "WARNING" and record.exc_info is None
        assert record.getMessage().startswith("the database is unavailable (")


async def test_the_loop_ends_at_once_when_stopped_before_it_starts(
    sessions: Sessions, courier: Courier
):
    await outbox(sessions, "mail")
    stop = asyncio.Event()
    stop.set()
    async with asyncio.timeout(2):
        await worker(sessions, courier).run_forever(stop)
    assert courier.handed == []
    assert await statuses(sessions) == [PENDING]
