"""Benchmark of group mail ("E-mail naar groep"): the mails per second a real
`graphql-api worker` sends to an SMTP server on loopback (aiosmtpd, in this process,
keeping a count only), for one mail to a dynamic group of N members.

    python bench/group_mail.py --backend sqlite --members 10000

The figure is the job's own: its members divided by the time from its start (the worker
took it and stored its recipients) to its end (the last chunk committed), so it counts
rendering, sending and recording every status, not the process's start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import graphql_api_email_notifications

from bench.outbox import Sink, fresh_database
from graphql_api.contacts.models import Contact
from graphql_api.graphql_base.relay import decode_id
from graphql_api.jobs.models import Job, JobState
from graphql_api.kernel.db import create_engine
from graphql_api.migrations.runner import upgrade
from graphql_api.settings import Settings
from graphql_api.testing import CLI, GraphQLClient, make_user, new_group_id
from graphql_api.web.app import create_app, load_plugins

DATABASE = "bench_group_mail"
SEND = """mutation($input: SendGroupMailInput!) { sendGroupMail(input: $input) {
  job { id } errors { code message } } }"""
SUBJECT = "Nieuws van {{ group.name }}"
BODY = "Beste {{ contact.firstName }},\n\nHet nieuws van deze maand.\n\nGroet, {{ group.name }}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A real `graphql-api worker` process, as production runs it."""
    return subprocess.Popen([*CLI, "worker"], env=env, stdout=subprocess.DEVNULL)


async def run(backend: str, members: int, connections: int, chunk: int) -> str:
    url = await fresh_database(backend, DATABASE)
    engine = create_engine(url)
    await upgrade(engine, load_plugins(Settings()).migrations())
    async with engine.begin() as connection:
        rows = [
            {
                "first_name": f"Lid{i}",
                "last_name": "Bench",
                "email": f"lid{i}@example.nl",
                "postal_code": "9999AA",
            }
            for i in range(members)
        ]
        await connection.execute(insert(Contact), rows)
    await engine.dispose()
    app = create_app(Settings(database_url=url), [graphql_api_email_notifications])
    _, token = await make_user(app, "Bench", "bench@example.coop", admin=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://b"
    ) as http:
        client = GraphQLClient(http, token)
        condition = {"condition": {"field": "postalCode", "op": "EQ", "value": "9999AA"}}
        group = await new_group_id(client, name="Iedereen", filter=condition)
        given = {"groupId": group, "subject": SUBJECT, "body": BODY}
        started = await client.data(SEND, {"input": given})
        assert started["sendGroupMail"]["errors"] == [], started
        job_id = decode_id(started["sendGroupMail"]["job"]["id"], "Job", ["id"])

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    env = {
        **os.environ,
        "GRAPHQL_API_DATABASE_URL": url,
        "GRAPHQL_API_DEV_MODE": "false",
        "GRAPHQL_API_PLUGINS": "email_notifications",
        "GRAPHQL_API_SMTP_PORT": str(controller.port),
        "GRAPHQL_API_SMTP_FROM": "groepen@zonnedael.coop",
        "GRAPHQL_API_SMTP_RATE": "0",
        "GRAPHQL_API_SMTP_CONNECTIONS": str(connections),
        "GRAPHQL_API_GROUP_MAIL_CHUNK_SIZE": str(chunk),
    }
    worker = start_worker(env)
    try:
        while True:
            async with app.state.sessions() as session:
                job = await session.get(Job, job_id)
                assert job is not None
                if job.state not in (JobState.QUEUED, JobState.RUNNING):
                    break
            await asyncio.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        controller.stop(no_assert=True)
        await app.state.engine.dispose()
    assert job.state is JobState.SUCCEEDED and sink.count == members, (job.state, sink.count)
    assert job.started_at is not None and job.finished_at is not None
    seconds = (job.finished_at - job.started_at).total_seconds()
    return (
        f"{backend}: {members:,} members, {connections} SMTP connections, chunks of {chunk}: "
        f"{members / seconds:.0f} mails/s ({seconds:.1f} s, job start to end; "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=100)
    arguments = parser.parse_args()
    for backend in arguments.backend or ["sqlite"]:
        line = asyncio.run(run(backend, arguments.members, arguments.connections, arguments.chunk))
        print(line, flush=True)


if __name__ == "__main__":
    main()
