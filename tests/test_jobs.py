"""Bulk jobs (taken), on SQLite and PostgreSQL: the machinery, generic over kinds, through
real GraphQL requests and the runner the workers run.

The kind under test is registered by the tests themselves: ``test.touch`` writes one row
per item (an audit entry) in its chunk's transaction, so what a chunk did is in the
database exactly when its progress is, and an item handled twice would show as two rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.graphql_base.relay import parse_global_id, to_global_id
from graphql_api.jobs import JobKind
from graphql_api.jobs.models import Job, JobItem, JobState
from graphql_api.jobs.runner import MAX_ATTEMPTS, JobRunner
from graphql_api.jobs.service import start_job
from graphql_api.kernel.access import SYSTEM, Principal
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.notifications.models import OutboxEvent
from graphql_api.settings import Settings
from graphql_api.testing import (
    GraphQLClient,
    make_job_runner,
    make_user,
    new_contact_ids,
    run_jobs,
    serving,
    subscribed,
    unchanged,
)
from graphql_api.users.models import AuditEntry, User

TOUCHED = "test.touched"
WAIT = 15.0

JOB = """query($id: ID!) { job(id: $id) {
  id kind state total done failed changed cause cancelRequested createdAt startedAt finishedAt
  owner { name } errors { field code message }
} }"""
JOBS = """query($state: JobState, $first: Int, $after: String) {
  jobs(state: $state, first: $first, after: $after) {
    totalCount nodes { id state } pageInfo { hasNextPage endCursor }
  }
}"""
NODE = "query($id: ID!) { node(id: $id) { __typename id ... on Job { state } } }"
CANCEL = """mutation($id: ID!) { cancelJob(id: $id) {
  job { id state cancelRequested done } errors { field code message }
} }"""
JOB_CHANGED = """subscription Follow($id: ID!) {
  jobChanged(id: $id) { id state done total changed cancelRequested }
}"""


@dataclass
class Behaviour:
    """What the test kind does besides touching its items."""

    refuse_at: int | None = None
    """An item whose chunk is refused (``UserInputError``)."""
    faults: int = 0
    """Chunks that fail on a fault (``RuntimeError``) before one passes."""
    deadlocks: int = 0
    """Chunks the database aborts as a deadlock before one passes."""
    chunks: list[list[int]] = field(default_factory=list)
    """The items of every call, rolled back ones included."""
    stop_after: int | None = None
    """Set ``stop`` once this many calls were made (a worker asked to stop meanwhile)."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class _Deadlock(Exception):
    sqlstate = "40P01"


def touching(behaviour: Behaviour) -> Callable[..., Any]:
    async def run_chunk(session: AsyncSession, job: Job, owner: Principal, items: list[int]) -> int:
        behaviour.chunks.append(list(items))
        owner.require("contacts.manage")
        if behaviour.refuse_at in items:
            raise UserInputError.single(
                ["items", str(behaviour.refuse_at)],
                ErrorCode.INVALID,
                f"Item {behaviour.refuse_at} cannot be touched.",
            )
        # Written first, so a fault below has something to roll back.
        touched_before = set(
            await session.scalars(
                select(AuditEntry.subject).where(
                    AuditEntry.action == TOUCHED, AuditEntry.subject.in_([str(i) for i in items])
                )
            )
        )
        await session.execute(
            insert(AuditEntry.__table__),
            [
                {
                    "action": TOUCHED,
                    "subject": str(i),
                    "details": {"job": job.id, "by": job.claimed_by},
                }
                for i in items
            ],
        )
        if behaviour.faults:
            behaviour.faults -= 1
            raise RuntimeError("boom: SELECT secret FROM vault")
        if behaviour.deadlocks:
            behaviour.deadlocks -= 1
            raise DBAPIError("UPDATE jobs", None, _Deadlock("deadlock detected"))
        if behaviour.stop_after == len(behaviour.chunks):
            behaviour.stop.set()
        return len(items) - len(touched_before)

    return run_chunk


async def contacts_in_city(session: AsyncSession, job: Job) -> None:
    """``prepare`` of ``test.city``: everyone living in the job's city when it runs."""
    everyone = select(literal(job.id), Contact.id).where(Contact.city == job.params["city"])
    await session.execute(insert(JobItem).from_select(["job_id", "item"], everyone))


@pytest.fixture
def behaviour() -> Behaviour:
    return Behaviour()


@pytest.fixture
def kinds(app: Any, behaviour: Behaviour) -> Any:
    app.state.job_kinds.register(
        "test.touch", JobKind("contacts.manage", None, touching(behaviour))
    )
    app.state.job_kinds.register(
        "test.city", JobKind("contacts.manage", contacts_in_city, touching(behaviour))
    )
    return app.state.job_kinds


def runner(app: Any, chunk_size: int = 2, **options: Any) -> JobRunner:
    settings = app.state.settings.model_copy(update={"job_chunk_size": chunk_size})
    options.setdefault("retry_base_seconds", 0)
    return JobRunner(app.state.sessions, app.state.job_kinds, settings, **options)


def owner(user: tuple[int, str], name: str = "Owner") -> Principal:
    return Principal(name=name, permissions=frozenset({"contacts.manage"}), user_id=user[0])


async def start(
    app: Any,
    by: Principal,
    items: list[int] | None,
    kind: str = "test.touch",
    params: dict[str, Any] | None = None,
) -> str:
    async with app.state.sessions() as session, session.begin():
        job = await start_job(
            session,
            kind=kind,
            owner=by,
            params=params or {},
            cause=f"touch {len(items or [])} items",
            items=items,
        )
    return to_global_id("Job", job.id)


def pk(global_id: str) -> int:
    parsed = parse_global_id(global_id)
    assert parsed is not None
    return parsed[1]


async def job_of(client: GraphQLClient, job_id: str) -> dict[str, Any]:
    return (await client.data(JOB, {"id": job_id}))["job"]


async def touches(app: Any) -> Counter[int]:
    """How often each item was touched, by committed chunks."""
    async with app.state.sessions() as session:
        subjects = await session.scalars(
            select(AuditEntry.subject).where(AuditEntry.action == TOUCHED)
        )
        return Counter(int(s) for s in subjects)


async def touched_by(app: Any) -> dict[int, str]:
    async with app.state.sessions() as session:
        rows = await session.scalars(select(AuditEntry).where(AuditEntry.action == TOUCHED))
        return {int(row.subject): row.details["by"] for row in rows}


async def job_row(app: Any, job_id: str) -> Job:
    async with app.state.sessions() as session:
        job = await session.get(Job, pk(job_id))
        assert job is not None
        return job


async def items_left(app: Any, job_id: str) -> int:
    async with app.state.sessions() as session:
        counted = select(func.count()).where(JobItem.job_id == pk(job_id))
        return await session.scalar(counted) or 0


async def steps(run: JobRunner, job_id: str, client: GraphQLClient) -> list[tuple[str, int]]:
    """Claim the job and run it step by step; (state, done) after each step."""
    assert await run.claim() == pk(job_id)
    seen = []
    while True:
        more = await run.step(pk(job_id))
        job = await job_of(client, job_id)
        seen.append((job["state"], job["done"]))
        if not more:
            return seen


def test_the_chunk_size_is_a_setting_of_10000_by_default(monkeypatch: pytest.MonkeyPatch):
    assert Settings().job_chunk_size == 10_000
    monkeypatch.setenv("GRAPHQL_API_JOB_CHUNK_SIZE", "500")
    assert Settings().job_chunk_size == 500


async def test_a_job_runs_chunk_by_chunk_and_succeeds(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any
):
    async with app.state.sessions() as session, session.begin():
        session.add(AuditEntry(action=TOUCHED, subject="3", details={"by": "earlier"}))
    job_id = await start(app, owner(admin), [5, 1, 3, 3, 2, 4])
    queued = await job_of(client, job_id)
    assert queued["state"] == "QUEUED"
    assert (queued["total"], queued["done"], queued["changed"]) == (5, 0, 0)
    assert queued["startedAt"] is None
    assert queued["owner"] == {"name": "Johannes Frölich"}
    assert queued["kind"] == "test.touch"
    assert await items_left(app, job_id) == 5, "given items are stored once each"

    seen = await steps(runner(app), job_id, client)

    assert seen == [
        ("RUNNING", 0),
        ("RUNNING", 2),
        ("RUNNING", 4),
        ("SUCCEEDED", 5),
    ]
    done = await job_of(client, job_id)
    assert done["changed"] == 4, "item 3 was touched before: done, not changed"
    assert done["startedAt"] is not None
    assert done["finishedAt"] is not None
    assert done["errors"] == []
    assert done["cancelRequested"] is False
    assert await touches(app) == {1: 1, 2: 1, 3: 2, 4: 1, 5: 1}
    assert await items_left(app, job_id) == 0, "a finished job's list goes"
    async with app.state.sessions() as session:
        events = await session.scalars(
            select(OutboxEvent.data)
            .where(OutboxEvent.type == "job.changed")
            .order_by(OutboxEvent.id)
        )
        assert [(e["state"], e["done"], e["total"]) for e in events] == [
            ("QUEUED", 0, 5),
            ("RUNNING", 0, 5),
            ("RUNNING", 2, 5),
            ("RUNNING", 4, 5),
            ("SUCCEEDED", 5, 5),
        ]


async def test_run_until_idle_runs_every_due_job(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any
):
    first = await start(app, owner(admin), [1, 2, 3])
    second = await start(app, owner(admin), [4])
    empty = await start(app, owner(admin), [])
    assert await run_jobs(app) == 3
    for job_id, total in ((first, 3), (second, 1), (empty, 0)):
        job = await job_of(client, job_id)
        assert (job["state"], job["done"], job["total"]) == ("SUCCEEDED", total, total)
    assert await make_job_runner(app).run_until_idle() == 0


async def test_a_named_list_is_made_when_the_job_runs(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any
):
    await new_contact_ids(client, "Jansen", "Bakker", city="Zwolle")
    await new_contact_ids(client, "Visser", city="Deventer")
    job_id = await start(app, owner(admin), None, kind="test.city", params={"city": "Zwolle"})
    assert (await job_of(client, job_id))["total"] is None, "unknown until it runs"
    # Who lives there when the job runs counts, not when it was started.
    [later] = await new_contact_ids(client, "de Boer", city="Zwolle")
    await runner(app).run_until_idle()
    job = await job_of(client, job_id)
    assert (job["state"], job["total"], job["done"]) == ("SUCCEEDED", 3, 3)
    assert pk(later) in await touches(app)


async def test_a_queued_job_is_cancelled_at_once(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any
):
    job_id = await start(app, owner(admin), [1, 2, 3])
    cancelled = (await client.data(CANCEL, {"id": job_id}))["cancelJob"]
    assert cancelled == {
        "job": {"id": job_id, "state": "CANCELLED", "cancelRequested": True, "done": 0},
        "errors": [],
    }
    assert (await job_of(client, job_id))["finishedAt"] is not None
    assert await runner(app).claim() is None
    assert await touches(app) == {}


async def test_a_running_job_stops_between_chunks_keeping_what_it_did(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any
):
    job_id = await start(app, owner(admin), [1, 2, 3, 4])
    run = runner(app, chunk_size=1)
    assert await run.claim() == pk(job_id)
    assert await run.step(pk(job_id))  # started
    assert await run.step(pk(job_id))  # item 1
    asked = (await client.data(CANCEL, {"id": job_id}))["cancelJob"]
    assert asked["errors"] == []
    assert asked["job"]["state"] == "RUNNING"
    assert asked["job"]["cancelRequested"] is True
    assert not await run.step(pk(job_id))
    job = await job_of(client, job_id)
    assert (job["state"], job["done"], job["total"]) == ("CANCELLED", 1, 4)
    assert await touches(app) == {1: 1}
    assert await run.claim() is None


async def test_a_stopping_worker_ends_its_chunk_and_hands_the_job_back(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any, behaviour: Behaviour
):
    behaviour.stop_after = 2
    job_id = await start(app, owner(admin), [1, 2, 3, 4, 5, 6])
    stopping = runner(app, chunk_size=1, name="stopping", poll_seconds=0.01)
    await asyncio.wait_for(stopping.run_forever(behaviour.stop), WAIT)
    left = await job_row(app, job_id)
    assert (left.state, left.done, left.claimed_by, left.lease_until) == (
        JobState.RUNNING,
        2,
        None,
        None,
    ), "handed back between two chunks, for any worker at once"
    assert await runner(app, name="next").run_until_idle() == 1
    job = await job_of(client, job_id)
    assert (job["state"], job["done"]) == ("SUCCEEDED", 6)
    assert await touches(app) == dict.fromkeys(range(1, 7), 1)
    assert (await job_row(app, job_id)).attempts == 0, "a worker that stops is no failure"


async def test_cancelling_a_finished_job_is_refused(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any
):
    job_id = await start(app, owner(admin), [1])
    await runner(app).run_until_idle()
    async with unchanged(app):
        refused = (await client.data(CANCEL, {"id": job_id}))["cancelJob"]
    assert refused["job"] is None
    [error] = refused["errors"]
    assert (error["field"], error["code"]) == (["id"], "JOB_FINISHED")
    assert "SUCCEEDED" in error["message"]


async def test_a_refused_chunk_fails_the_job_and_earlier_chunks_stay(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any, behaviour: Behaviour
):
    behaviour.refuse_at = 5
    job_id = await start(app, owner(admin), [1, 2, 3, 4, 5, 6, 7, 8])
    seen = await steps(runner(app), job_id, client)
    assert seen == [("RUNNING", 0), ("RUNNING", 2), ("RUNNING", 4), ("FAILED", 4)]
    job = await job_of(client, job_id)
    assert (job["done"], job["failed"], job["total"]) == (4, 2, 8)
    assert job["errors"] == [
        {"field": ["items", "5"], "code": "INVALID", "message": "Item 5 cannot be touched."}
    ]
    assert await touches(app) == {1: 1, 2: 1, 3: 1, 4: 1}


async def test_an_owner_deactivated_since_fails_the_job_at_the_next_chunk(
    app: Any, client: GraphQLClient, kinds: Any
):
    anna = await make_user(app, "Anna", "anna@example.coop", role="manager")
    job_id = await start(app, owner(anna), [1, 2, 3])
    run = runner(app)
    assert await run.claim() == pk(job_id)
    assert await run.step(pk(job_id))
    assert await run.step(pk(job_id))
    async with app.state.sessions() as session, session.begin():
        await session.execute(update(User).where(User.id == anna[0]).values(is_active=False))
    assert not await run.step(pk(job_id))
    job = await job_of(client, job_id)
    assert (job["state"], job["done"]) == ("FAILED", 2)
    assert [e["code"] for e in job["errors"]] == ["FORBIDDEN"]


async def test_starting_needs_the_kinds_permission(app: Any, kinds: Any):
    viewer = await make_user(app, "Piet", "piet@example.coop", role="viewer")
    looker = Principal(name="Piet", permissions=frozenset({"groups.view"}), user_id=viewer[0])
    async with unchanged(app):
        with pytest.raises(UserInputError) as refused:
            await start(app, looker, [1])
    assert refused.value.problems[0].code == ErrorCode.FORBIDDEN
    with pytest.raises(ValueError, match=r"no job kind 'test\.nope'"):
        await start(app, SYSTEM, [1], kind="test.nope")


async def test_a_system_job_runs_with_every_permission(app: Any, client: GraphQLClient, kinds: Any):
    job_id = await start(app, SYSTEM, [1, 2])
    await runner(app).run_until_idle()
    job = await job_of(client, job_id)
    assert (job["state"], job["owner"]) == ("SUCCEEDED", None)


async def test_a_fault_is_retried_and_the_job_goes_on(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any, behaviour: Behaviour
):
    behaviour.faults = 2
    job_id = await start(app, owner(admin), [1, 2, 3])
    run = runner(app)
    assert await run.run_until_idle() == 3, "claimed again after each fault"
    job = await job_of(client, job_id)
    assert (job["state"], job["done"]) == ("SUCCEEDED", 3)
    assert await touches(app) == {1: 1, 2: 1, 3: 1}, "a failed chunk's rows were rolled back"
    assert (await job_row(app, job_id)).attempts == 0


async def test_a_deadlock_runs_the_chunk_again_at_once(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any, behaviour: Behaviour
):
    behaviour.deadlocks = 1
    job_id = await start(app, owner(admin), [1, 2, 3])
    run = runner(app, retry_base_seconds=3600)
    assert await run.run_once() == pk(job_id)
    job = await job_of(client, job_id)
    assert (job["state"], job["done"]) == ("SUCCEEDED", 3)
    assert behaviour.chunks == [[1, 2], [1, 2], [3]]
    assert await touches(app) == {1: 1, 2: 1, 3: 1}


async def test_a_job_failing_on_every_try_fails_as_internal_without_details(
    app: Any,
    client: GraphQLClient,
    admin: tuple[int, str],
    kinds: Any,
    behaviour: Behaviour,
    caplog: pytest.LogCaptureFixture,
):
    behaviour.faults = 1000
    job_id = await start(app, owner(admin), [1, 2, 3])
    with caplog.at_level(logging.WARNING, logger="graphql_api.jobs"):
        assert await runner(app).run_until_idle() == MAX_ATTEMPTS
    job = await job_of(client, job_id)
    assert (job["state"], job["done"]) == ("FAILED", 0)
    [error] = job["errors"]
    assert error["code"] == "INTERNAL"
    assert error["field"] is None
    assert f"{MAX_ATTEMPTS} times" in error["message"]
    assert "boom" not in error["message"]
    assert "SELECT" not in error["message"]
    assert "boom: SELECT secret FROM vault" in caplog.text, "the log says why"
    assert await touches(app) == {}


async def test_a_job_backs_off_after_a_fault(
    app: Any, admin: tuple[int, str], kinds: Any, behaviour: Behaviour
):
    behaviour.faults = 1
    job_id = await start(app, owner(admin), [1])
    run = runner(app, retry_base_seconds=3600)
    assert await run.run_once() == pk(job_id)
    assert await run.claim() is None, "not before its backoff"
    job = await job_row(app, job_id)
    assert (job.state, job.attempts, job.claimed_by) == (JobState.RUNNING, 1, None)


async def test_a_job_resumes_after_its_runner_died_handling_no_item_twice(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any
):
    job_id = await start(app, owner(admin), [1, 2, 3, 4, 5])
    dead = runner(app, name="dead")
    assert await dead.claim() == pk(job_id)
    assert await dead.step(pk(job_id))
    assert await dead.step(pk(job_id))
    assert await runner(app, name="other").claim() is None, "its lease holds"
    async with app.state.sessions() as session, session.begin():
        expired = utcnow() - timedelta(seconds=1)
        await session.execute(update(Job).where(Job.id == pk(job_id)).values(lease_until=expired))

    other = runner(app, name="other")
    assert await other.claim() == pk(job_id)
    assert (await job_row(app, job_id)).attempts == 1, "its worker died: one attempt used"
    async with unchanged(app):
        assert not await dead.step(pk(job_id)), "taken over: the dead runner does nothing"
    while await other.step(pk(job_id)):
        pass

    job = await job_of(client, job_id)
    assert (job["state"], job["done"]) == ("SUCCEEDED", 5)
    assert await touches(app) == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    assert await touched_by(app) == {1: "dead", 2: "dead", 3: "other", 4: "other", 5: "other"}


async def test_a_job_whose_runners_keep_dying_fails(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any
):
    job_id = await start(app, owner(admin), [1, 2])
    async with app.state.sessions() as session, session.begin():
        await session.execute(
            update(Job)
            .where(Job.id == pk(job_id))
            .values(
                state=JobState.RUNNING,
                claimed_by="ghost",
                attempts=MAX_ATTEMPTS - 1,
                lease_until=utcnow() - timedelta(seconds=1),
            )
        )
    await runner(app).run_until_idle()
    job = await job_of(client, job_id)
    assert (job["state"], [e["code"] for e in job["errors"]]) == ("FAILED", ["INTERNAL"])
    assert await touches(app) == {}


async def test_two_runners_never_run_the_same_job(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any
):
    """On PostgreSQL the runners claim side by side (``SKIP LOCKED``); on SQLite one at a
    time. Either way each job has one runner, and each item is handled once."""
    only = await start(app, owner(admin), [1])
    claims = await asyncio.gather(runner(app, name="a").claim(), runner(app, name="b").claim())
    assert sorted(claims, key=str) == [pk(only), None]
    await runner(app).release(pk(only))  # not its claim: nothing happens
    assert (await job_row(app, only)).claimed_by in ("a", "b")
    async with app.state.sessions() as session, session.begin():
        await session.execute(update(Job).values(claimed_by=None, lease_until=None))

    jobs = [
        await start(app, owner(admin), list(range(n * 10 + 1, n * 10 + 7))) for n in range(1, 5)
    ]
    first, second = runner(app, chunk_size=1, name="a"), runner(app, chunk_size=1, name="b")
    ran = await asyncio.gather(first.run_until_idle(), second.run_until_idle())
    assert sum(ran) == 5
    by = await touched_by(app)
    assert set((await touches(app)).values()) == {1}
    for job_id in [only, *jobs]:
        job = await job_of(client, job_id)
        assert job["state"] == "SUCCEEDED"
        async with app.state.sessions() as session:
            runners = await session.scalars(
                select(AuditEntry.details).where(AuditEntry.action == TOUCHED)
            )
            assert len({d["by"] for d in runners if d["job"] == pk(job_id)}) == 1
    assert len(by) == 1 + 4 * 6


async def test_who_sees_which_job(
    app: Any, client: GraphQLClient, http: httpx.AsyncClient, admin: tuple[int, str], kinds: Any
):
    made = await client.data(
        'mutation { createStaffRole(input: {name: "Taakkijker", permissions: ["jobs.view"]}) '
        "{ errors { code } } }"
    )
    assert made["createStaffRole"]["errors"] == []
    anna = await make_user(app, "Anna", "anna@example.coop", role="manager")
    piet = await make_user(app, "Piet", "piet@example.coop", role="manager")
    kijker = await make_user(app, "Kees", "kees@example.coop", role="Taakkijker")
    as_anna, as_piet, as_kijker = (GraphQLClient(http, u[1]) for u in (anna, piet, kijker))
    annas = await start(app, owner(anna), [1, 2])
    admins = await start(app, owner(admin), [3])

    for caller, sees in (
        (as_anna, [annas]),
        (as_piet, []),
        (as_kijker, [admins, annas]),
        (client, [admins, annas]),
    ):
        listed = (await caller.data(JOBS))["jobs"]
        assert [n["id"] for n in listed["nodes"]] == sees, "newest first"
        assert listed["totalCount"] == len(sees)
        for job_id in (annas, admins):
            found = (await caller.data(JOB, {"id": job_id}))["job"]
            assert (found is not None) == (job_id in sees)
            node = await caller.execute(NODE, {"id": job_id})
            assert "errors" not in node, "another's job is null, not an error saying it exists"
            assert (node["data"]["node"] is not None) == (job_id in sees)

    queued = (await client.data(JOBS, {"state": "QUEUED", "first": 1}))["jobs"]
    assert (queued["totalCount"], queued["pageInfo"]["hasNextPage"]) == (2, True)
    rest = await client.data(JOBS, {"state": "QUEUED", "after": queued["pageInfo"]["endCursor"]})
    assert [n["id"] for n in rest["jobs"]["nodes"]] == [annas]
    assert (await client.data(JOBS, {"state": "RUNNING"}))["jobs"]["totalCount"] == 0

    async with unchanged(app):
        not_found = (await as_piet.data(CANCEL, {"id": annas}))["cancelJob"]
        forbidden = (await as_kijker.data(CANCEL, {"id": annas}))["cancelJob"]
    assert [(e["field"], e["code"]) for e in not_found["errors"]] == [(["id"], "NOT_FOUND")]
    assert [e["code"] for e in forbidden["errors"]] == ["FORBIDDEN"]
    assert "jobs.manage" in forbidden["errors"][0]["message"]
    by_admin = (await client.data(CANCEL, {"id": annas}))["cancelJob"]
    assert (by_admin["errors"], by_admin["job"]["state"]) == ([], "CANCELLED")
    by_owner = (await as_anna.data(CANCEL, {"id": annas}))["cancelJob"]
    assert [e["code"] for e in by_owner["errors"]] == ["JOB_FINISHED"]

    anonymous = GraphQLClient(http, None)
    for document, variables in ((JOB, {"id": annas}), (JOBS, {}), (CANCEL, {"id": admins})):
        response = await anonymous.post(document, variables)
        assert response.status_code == 401
        assert "data" not in response.json()


async def test_an_id_of_another_type_is_refused(
    app: Any, client: GraphQLClient, admin: tuple[int, str], kinds: Any
):
    contact = to_global_id("Contact", 1)
    for wrong in (contact, "zzz"):
        body = await client.execute(JOB, {"id": wrong})
        assert body["data"] == {"job": None}
        [error] = body["errors"]
        assert error["extensions"]["code"] == "INVALID_ID"
        async with unchanged(app):
            refused = (await client.data(CANCEL, {"id": wrong}))["cancelJob"]
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [(["id"], "INVALID_ID")]
    nowhere = to_global_id("Job", 999_999)
    assert (await client.data(JOB, {"id": nowhere}))["job"] is None
    missing = (await client.data(CANCEL, {"id": nowhere}))["cancelJob"]
    assert [e["code"] for e in missing["errors"]] == ["NOT_FOUND"]


class Following:
    """One graphql-transport-ws connection running ``jobChanged``."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket

    async def message(self) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.socket.recv(), WAIT))

    async def job(self) -> dict[str, Any]:
        message = await self.message()
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]["jobChanged"]

    async def until_complete(self) -> list[dict[str, Any]]:
        """Every job sent until the subscription completes."""
        jobs = []
        while (message := await self.message())["type"] != "complete":
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            jobs.append(message["payload"]["data"]["jobChanged"])
        return jobs


async def follow(url: str, token: str, job_id: str) -> Any:
    return await subscribed(url, token, JOB_CHANGED, {"id": job_id})


async def test_job_changed_follows_a_job_over_websocket_to_its_end(
    app: Any, server_env: dict[str, str], admin: tuple[int, str], kinds: Any
):
    """A real server (another process) serves the subscription; this test's runner, which
    knows the test kind, runs the job: the progress reaches the subscriber through the
    outbox, from process to process."""
    env = {**server_env, "GRAPHQL_API_FEED_POLL_SECONDS": "0.2"}
    anna = await make_user(app, "Anna", "anna@example.coop", role="manager")
    job_id = await start(app, owner(admin), [1, 2, 3, 4, 5, 6, 7])
    finished = await start(app, owner(admin), [8])
    annas = await start(app, owner(anna), [9])
    run = runner(app)
    with serving(env) as (url, _):
        async with await follow(url, admin[1], job_id) as socket:
            following = Following(socket)
            first = await following.message()
            assert first["payload"]["data"]["jobChanged"]["state"] == "QUEUED"
            # Step by step, each message awaited: one message per committed step.
            assert await run.claim() == pk(job_id)
            jobs = []
            while True:
                more = await run.step(pk(job_id))
                jobs.append(await following.job())
                if not more:
                    break
            assert await following.until_complete() == []

        assert await run.run_until_idle() == 2
        async with await follow(url, admin[1], finished) as socket:
            assert [j["state"] for j in await Following(socket).until_complete()] == ["SUCCEEDED"]

        async with await follow(url, admin[1], annas) as socket:
            jobs_of_anna = await Following(socket).until_complete()
            assert jobs_of_anna[0]["id"] == annas, "jobs.view (the admin) follows anyone's"
        async with await follow(url, anna[1], job_id) as socket:
            refused = await Following(socket).message()
            errors = (
                refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
            )
            assert [e["extensions"]["code"] for e in errors] == ["NOT_FOUND"], refused

    assert [(j["state"], j["done"]) for j in jobs] == [
        ("RUNNING", 0),
        ("RUNNING", 2),
        ("RUNNING", 4),
        ("RUNNING", 6),
        ("SUCCEEDED", 7),
    ]
    assert jobs[-1] == {
        "id": job_id,
        "state": "SUCCEEDED",
        "done": 7,
        "total": 7,
        "changed": 7,
        "cancelRequested": False,
    }
