"""A bulk job survives ``kill -9`` of its worker: a second `graphql-api worker` takes it
up where the last committed chunk left it, and nothing is written twice: each history
row, each derived entry and each contact in the events exists exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from starlette.applications import Starlette

from graphql_api.contacts.models import Contact
from graphql_api.graphql_base.relay import decode_id
from graphql_api.groups.models import DerivedMembership, Membership, MembershipEvent
from graphql_api.jobs.models import JobItem, JobState
from graphql_api.notifications.models import OutboxEvent
from graphql_api.testing import CLI, GraphQLClient, job_row, new_group_id, wait_for_job

CONTACTS = 3_000
CHUNK = 40
ADD = """mutation($groupId: ID!, $from: MemberListInput) {
  addGroupMembers(groupId: $groupId, from: $from) { job { id } errors { code } } }"""


@pytest.fixture
def app(app_factory: Any) -> Starlette:
    """Lists of more than a hundred contacts are jobs."""
    return app_factory(bulk_inline_limit=100)


def start_worker(database_url: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "GRAPHQL_API_DATABASE_URL": database_url,
        "GRAPHQL_API_DEV_MODE": "false",
        "GRAPHQL_API_JOB_CHUNK_SIZE": str(CHUNK),
        "GRAPHQL_API_JOB_LEASE_SECONDS": "2",
    }
    return subprocess.Popen(
        [*CLI, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


async def test_a_killed_worker_loses_and_repeats_nothing(
    app: Starlette, client: GraphQLClient, database_url: str
):
    async with app.state.sessions() as session, session.begin():
        rows = [{"last_name": f"Lid {i}", "postal_code": "9999AA"} for i in range(CONTACTS)]
        await session.execute(insert(Contact.__table__), rows)
    target = await new_group_id(client, name="Iedereen in 9999")
    reader = await new_group_id(client, name="Lezers", composedOfIds=[target])
    condition = {"condition": {"field": "postalCode", "op": "EQ", "value": "9999AA"}}
    started = await client.data(ADD, {"groupId": target, "from": {"filter": condition}})
    job_id = decode_id(started["addGroupMembers"]["job"]["id"], "Job", ["id"])

    first = start_worker(database_url)
    try:
        await wait_for_job(app, job_id, lambda job: job.done >= 5 * CHUNK, 120)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(timeout=10)
    killed = await job_row(app, job_id)
    assert killed.state is JobState.RUNNING
    assert 0 < killed.done < CONTACTS, "killed part way"

    second = start_worker(database_url)
    try:
        finished = await wait_for_job(
            app, job_id, lambda job: job.state is not JobState.RUNNING, 180
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert (finished.state, finished.done, finished.changed) == (
        JobState.SUCCEEDED,
        CONTACTS,
        CONTACTS,
    )

    target_pk = decode_id(target, "Group", ["id"])
    reader_pk = decode_id(reader, "Group", ["id"])
    async with app.state.sessions() as session:
        for group, rows in ((target_pk, Membership), (reader_pk, DerivedMembership)):
            stored = await session.scalar(
                select(func.count()).select_from(rows).where(rows.group_id == group)
            )
            assert stored == CONTACTS
            history = Counter(
                await session.scalars(
                    select(MembershipEvent.contact_id).where(MembershipEvent.group_id == group)
                )
            )
            assert len(history) == CONTACTS and set(history.values()) == {1}, "each row once"
            events = await session.scalars(
                select(OutboxEvent.data).where(OutboxEvent.type == "members.added")
            )
            contacts = Counter(
                c for data in events if data["group"]["id"] == group for c in data["contactIds"]
            )
            assert len(contacts) == CONTACTS and set(contacts.values()) == {1}, "each once"
        assert await session.scalar(select(func.count()).select_from(JobItem)) == 0
