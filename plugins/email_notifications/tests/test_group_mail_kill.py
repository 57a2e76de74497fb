"""A group mail to 10,000 members survives ``kill -9`` of its `graphql-api worker`: a second
worker takes the job on after the last committed chunk, every member gets the mail, and
only mails of the chunk that was in flight can arrive twice (under the same Message-ID)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from collections import Counter
from typing import Any

import graphql_api_email_notifications
import httpx
import pytest
from aiosmtpd.controller import Controller
from group_mail_testing import pk, sent
from sqlalchemy import func, insert, select

from graphql_api.plugin import Contact, JobState
from graphql_api.testing import (
    CLI,
    GraphQLClient,
    free_port,
    job_row,
    make_user,
    new_group_id,
    wait_for_job,
)

MEMBERS = 10_000
CHUNK = 100
MESSAGE_ID = re.compile(rb"^Message-ID: (<groupmail-\d+-contact-\d+@[^>]+>)", re.M | re.I)


class MessageIds:
    """An SMTP handler that keeps only each message's Message-ID: cheap enough to take
    thousands of mails a second without parsing them."""

    def __init__(self) -> None:
        self.ids: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        found = MESSAGE_ID.search(envelope.content)
        self.ids.append(found[1] if found else b"?")
        return "250 OK"


@pytest.fixture
def counting_smtp() -> Any:
    handler = MessageIds()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop(no_assert=True)


def start_worker(database_url: str, smtp_port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "GRAPHQL_API_DATABASE_URL": database_url,
        "GRAPHQL_API_DEV_MODE": "false",
        "GRAPHQL_API_PLUGINS": "email_notifications",
        "GRAPHQL_API_JOB_LEASE_SECONDS": "2",
        "GRAPHQL_API_SMTP_PORT": str(smtp_port),
        "GRAPHQL_API_SMTP_FROM": "groepen@zonnedael.coop",
        "GRAPHQL_API_SMTP_RATE": "0",
        "GRAPHQL_API_SMTP_CONNECTIONS": "4",
        "GRAPHQL_API_GROUP_MAIL_CHUNK_SIZE": str(CHUNK),
    }
    return subprocess.Popen(
        [*CLI, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


async def test_a_killed_worker_mails_each_member_once_but_for_one_chunk(
    app_factory: Any, database_url: str, counting_smtp: Any
):
    handler, port = counting_smtp
    app = app_factory(plugins=[graphql_api_email_notifications])
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    client = GraphQLClient(http, token)
    async with app.state.sessions() as session, session.begin():
        rows = [
            {
                "first_name": f"Lid{i}",
                "last_name": "Test",
                "email": f"lid{i}@example.nl",
                "postal_code": "9999AA",
            }
            for i in range(MEMBERS)
        ]
        await session.execute(insert(Contact.__table__), rows)
    condition = {"condition": {"field": "postalCode", "op": "EQ", "value": "9999AA"}}
    group = await new_group_id(client, name="Iedereen in 9999", filter=condition)
    mail = await sent(client, groupId=group, subject="Nieuws", body="Beste {{ contact.firstName }}")
    data = await client.data("query($id: ID!) { groupMail(id: $id) { job { id } } }", {"id": mail})
    job_id = pk(data["groupMail"]["job"]["id"], "Job")

    first = start_worker(database_url, port)
    try:
        reached = await wait_for_job(app, job_id, lambda job: job.done >= 20 * CHUNK, 120)
        # Just after a chunk committed, the next one is being sent: killed in flight.
        await wait_for_job(app, job_id, lambda job: job.done > reached.done, 30)
        await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first.wait(timeout=10)
    killed = await job_row(app, job_id)
    assert killed.state is JobState.RUNNING and 0 < killed.done < MEMBERS, "killed part way"

    second = start_worker(database_url, port)
    try:
        finished = await wait_for_job(
            app, job_id, lambda job: job.state is not JobState.RUNNING, 180
        )
    finally:
        second.send_signal(signal.SIGTERM)
        _, errors = second.communicate(timeout=30)
    assert (finished.state, finished.done, finished.changed) == (
        JobState.SUCCEEDED,
        MEMBERS,
        MEMBERS,
    ), errors[-2000:]

    received = Counter(handler.ids)
    assert len(received) == MEMBERS, "every member got the mail"
    repeats = sum(n - 1 for n in received.values())
    assert repeats <= CHUNK, f"{repeats} repeats: more than the chunk in flight"
    counts = await client.data(
        "query($id: ID!) { groupMail(id: $id) { counts { sent failed skipped queued total } } }",
        {"id": mail},
    )
    assert counts["groupMail"]["counts"] == {
        "sent": MEMBERS,
        "failed": 0,
        "skipped": 0,
        "queued": 0,
        "total": MEMBERS,
    }
    async with app.state.sessions() as session:
        contacts = await session.scalar(select(func.count()).select_from(Contact))
    assert contacts == MEMBERS
    await http.aclose()
