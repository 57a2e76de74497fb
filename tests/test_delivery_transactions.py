"""A plugin's ``deliver`` writes through a transaction that commits with marking the
delivery done: exactly once per delivery, never for a failed, skipped or taken-over attempt."""

from typing import Any

import httpx
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update

from graphql_api.notifications.models import Delivery
from graphql_api.plugin import Event, SkipDelivery, hookimpl
from graphql_api.testing import GraphQLClient, make_user, make_worker, new_group_id

delivered = Table(
    "test_delivered_events",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("delivery_id", Integer, nullable=False),
    Column("group_name", String(200), nullable=False),
)


class Recorder:
    """Records each delivered ``group.created`` in its own table, then behaves as told."""

    __name__ = "recorder"

    def __init__(self) -> None:
        self.behaviours: list[str] = []
        self.app: Any = None

    @hookimpl
    def event_subscriptions(self) -> list[str]:
        return ["group.created"]

    @hookimpl
    async def deliver(self, event: Event, delivery_id: int, session: Any) -> None:
        behaviour = self.behaviours.pop(0) if self.behaviours else "deliver"
        if behaviour == "taken over":
            # Another worker claims the delivery meanwhile (its lease ran out).
            async with self.app.state.sessions() as other, other.begin():
                await other.execute(
                    update(Delivery).where(Delivery.id == delivery_id).values(attempts=99)
                )
        name = event.data["group"]["name"]
        await session.execute(insert(delivered).values(delivery_id=delivery_id, group_name=name))
        if behaviour == "fail":
            raise RuntimeError("the far side is down")
        if behaviour == "skip":
            raise SkipDelivery("nothing to do after all")


@pytest.fixture
async def recording(app_factory: Any) -> Any:
    """An app with the recorder, its table, and a client acting as an admin."""
    recorder = Recorder()
    app = app_factory(plugins=[recorder])
    recorder.app = app
    async with app.state.engine.begin() as connection:
        await connection.run_sync(delivered.metadata.create_all)
    _, token = await make_user(app, "Anna de Vries", "anna@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield recorder, app, GraphQLClient(http, token)
    async with app.state.engine.begin() as connection:
        await connection.run_sync(delivered.metadata.drop_all)


async def recorded(app: Any) -> list[str]:
    async with app.state.engine.connect() as connection:
        return list(await connection.scalars(select(delivered.c.group_name)))


async def statuses(app: Any) -> list[tuple[str, int]]:
    async with app.state.engine.connect() as connection:
        rows = await connection.execute(select(Delivery.status, Delivery.attempts))
        return [(status, attempts) for status, attempts in rows]


async def make_due(app: Any) -> None:
    """The retry's backoff, or a crashed worker's lease, has run out."""
    async with app.state.engine.begin() as connection:
        await connection.execute(
            update(Delivery).values(next_attempt_at=Delivery.created_at, lease_until=None)
        )


async def test_a_delivered_events_writes_commit_once(recording: Any) -> None:
    _, app, client = recording
    await new_group_id(client, name="Buurtteam")
    assert await make_worker(app).run_until_idle() == 1
    assert await make_worker(app).run_until_idle() == 0
    assert await recorded(app) == ["Buurtteam"]
    assert await statuses(app) == [("DELIVERED", 1)]


async def test_a_failed_attempt_commits_none_of_its_writes_and_its_retry_commits_them_once(
    recording: Any,
) -> None:
    recorder, app, client = recording
    recorder.behaviours = ["fail"]
    await new_group_id(client, name="Buurtteam")
    assert await make_worker(app).run_once() == 1
    assert await recorded(app) == []
    assert await statuses(app) == [("FAILED", 1)]
    await make_due(app)
    assert await make_worker(app).run_until_idle() == 1
    assert await recorded(app) == ["Buurtteam"]
    assert await statuses(app) == [("DELIVERED", 2)]


async def test_a_skipped_attempt_commits_none_of_its_writes(recording: Any) -> None:
    recorder, app, client = recording
    recorder.behaviours = ["skip"]
    await new_group_id(client, name="Buurtteam")
    assert await make_worker(app).run_until_idle() == 1
    assert await recorded(app) == []
    assert await statuses(app) == [("SKIPPED", 1)]


async def test_a_worker_whose_delivery_was_taken_over_commits_nothing(recording: Any) -> None:
    recorder, app, client = recording
    recorder.behaviours = ["taken over"]
    await new_group_id(client, name="Buurtteam")
    assert await make_worker(app).run_once() == 1
    assert await recorded(app) == []
    assert await statuses(app) == [("PENDING", 99)]
    await make_due(app)
    assert await make_worker(app).run_until_idle() == 1
    assert await recorded(app) == ["Buurtteam"]
    assert await statuses(app) == [("DELIVERED", 100)]
