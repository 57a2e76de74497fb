"""Benchmark of the notification outbox.

1. ``addGroupMembers`` of 1,000 contacts through GraphQL, without and with the e-mail
   plugin installed: what writing the outbox costs the request.
2. The worker's deliveries per second to a real SMTP server on loopback (aiosmtpd).

    python bench/outbox.py --backend sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import graphql_api_email_notifications

from graphql_api.contacts.models import Contact
from graphql_api.graphql_base.relay import to_global_id
from graphql_api.kernel.db import create_engine
from graphql_api.migrations.runner import upgrade
from graphql_api.notifications.worker import Worker
from graphql_api.settings import Settings
from graphql_api.testing import GraphQLClient, make_user, new_group_id
from graphql_api.web.app import create_app, load_plugins

CONTACTS = 1000
ROUNDS = 5
POSTGRES_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


class Sink:
    """An SMTP handler that counts the messages it accepts, and parses none."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        return "250 OK"


async def fresh_database(backend: str, name: str = "bench_outbox") -> str:
    """An empty database ``name`` of ``backend``: a new SQLite file, or a PostgreSQL
    database made again on the local server."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/{name}.sqlite3"
    admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return make_url(POSTGRES_SERVER).set(database=name).render_as_string(False)


async def run(backend: str) -> list[str]:
    url = await fresh_database(backend)
    engine = create_engine(url)
    await upgrade(engine, load_plugins(Settings()).migrations())
    async with engine.begin() as connection:
        await connection.execute(
            insert(Contact),
            [{"last_name": f"Lid {i}", "email": f"lid{i}@example.nl"} for i in range(CONTACTS)],
        )
    await engine.dispose()
    ids = [to_global_id("Contact", i + 1) for i in range(CONTACTS)]
    lines = []
    sink = Sink()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    os.environ["GRAPHQL_API_SMTP_PORT"] = str(port)  # read by the e-mail plugin's settings
    try:
        for label, plugins in (
            ("without e-mail plugin", []),
            ("with e-mail plugin", [graphql_api_email_notifications]),
        ):
            app = create_app(Settings(database_url=url), plugins)
            _, token = await make_user(app, "Bench", f"bench{len(lines)}@example.coop", admin=True)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://b"
            ) as http:
                client = GraphQLClient(http, token)
                template = await client.data(
                    'mutation { createEmailTemplate(input: {name: "W'
                    + label
                    + '", subject: "Welkom", body: "Beste {{ contact.lastName }}"}) { emailTemplate { id } } }'
                )
                template_id = template["createEmailTemplate"]["emailTemplate"]["id"]
                samples = []
                for round_ in range(ROUNDS):
                    group = await new_group_id(
                        client,
                        name=f"{label} {round_}",
                        emailOnNewMember=True,
                        newMemberEmailTemplateId=template_id,
                    )
                    started = time.perf_counter()
                    data = await client.data(
                        "mutation($g: ID!, $c: [ID!]!) { addGroupMembers(groupId: $g, contactIds: $c) { changedCount } }",
                        {"g": group, "c": ids},
                    )
                    samples.append((time.perf_counter() - started) * 1000)
                    assert data["addGroupMembers"]["changedCount"] == CONTACTS
                lines.append(
                    f"| addGroupMembers of {CONTACTS}, {label} | {statistics.median(samples):.0f} ms | {max(samples):.0f} ms |"
                )
                if plugins:
                    worker = Worker(
                        app.state.sessions,
                        app.state.plugins,
                        app.state.settings.model_copy(update={"outbox_batch_size": 100}),
                    )
                    started = time.perf_counter()
                    delivered = await worker.run_until_idle()
                    seconds = time.perf_counter() - started
                    # One members.added event per group and 1,000 contacts (plugin API 2).
                    assert delivered == ROUNDS and sink.count == CONTACTS * ROUNDS
                    lines.append(
                        f"| worker: {sink.count} e-mails ({delivered} events) to loopback SMTP | {sink.count / seconds:.0f} per second | {seconds:.1f} s in all |"
                    )
            await app.state.engine.dispose()
    finally:
        controller.stop(no_assert=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--results", type=Path, help="append a markdown table to this file")
    args = parser.parse_args()
    lines = asyncio.run(run(args.backend))
    table = "\n".join(["| measure | p50 / rate | worst / total |", "|---|---|---|", *lines])
    print(table)
    if args.results:
        with args.results.open("a") as out:
            out.write(
                f"\n### outbox, {args.backend}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
                f"{ROUNDS} rounds; {platform.machine()}, Python {platform.python_version()}.\n\n{table}\n"
            )


if __name__ == "__main__":
    main()
