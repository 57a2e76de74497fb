"""Faults, each with the outcome it must have, counted.

- ``bulk``: `kill -9` of `graphql-api serve` while it adds 5,000 contacts to a group in one
  ``addGroupMembers``; after a restart the group has all of them or none, and the history
  and the outbox agree with the rows. Each round kills at another moment of the request.
- ``worker``: `kill -9` of `graphql-api worker` (serve's in-process worker off) while it
  e-mails new members (added ``MAILS_PER_ADD`` at a time: an event, one delivery, each)
  through a real SMTP server on loopback (aiosmtpd), then a new worker, until every
  delivery is DELIVERED: every e-mail arrives, and one that arrives twice is told apart by
  its Message-ID (one per event and contact: a delivery cut short sends its event's mails
  again, at least once).
- ``terminate``: ``pg_terminate_backend`` of all the server's connections, several times,
  under the load of bench/load.py (PostgreSQL only): what the requests got back, and
  whether the service answers again without a restart.

By hand, on fresh databases on the local PostgreSQL (dropped afterwards)::

    .venv/bin/python bench/faults.py bulk --rounds 20
    .venv/bin/python bench/faults.py worker --rounds 5
    .venv/bin/python bench/faults.py terminate --rounds 5

tests/test_faults.py runs each with fewer rounds, on SQLite too where it applies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import (
    ADD,
    admin_token,
    drop,
    environment,
    faults_in,
    fresh_database,
    invariant_problems,
    load,
    prepare,
)
from graphql_api.contacts.models import Contact
from graphql_api.graphql_base.relay import to_global_id
from graphql_api.kernel.db import create_engine
from graphql_api.notifications.models import Delivery, DeliveryStatus
from graphql_api.testing import (
    CLI,
    GraphQLClient,
    free_port,
    new_group_id,
    new_template_id,
    serving,
)

BULK = 5_000
"""Contacts one ``addGroupMembers`` adds in the bulk rounds."""
MAILS = 300
"""New members e-mailed in the worker rounds."""
MAILS_PER_ADD = 10
"""New members one ``addGroupMembers`` adds in the worker rounds: one event each."""
WAIT = 60.0
"""Seconds anything may take before a round fails rather than hangs."""
COUNT = "query($id: ID!) { group(id: $id) { memberCount } }"


async def insert_contacts(database_url: str, count: int, **values: Any) -> list[str]:
    """``count`` contacts written straight into the database: their global ids."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            rows = [{"last_name": f"Lid {n}", **values} for n in range(count)]
            ids = await connection.scalars(insert(Contact).returning(Contact.id), rows)
            return [to_global_id("Contact", key) for key in ids]
    finally:
        await engine.dispose()


async def timed_bulk_add(url: str, token: str, group: str, contacts: list[str]) -> float:
    """Seconds one uninterrupted bulk add takes (it must succeed)."""
    async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
        started = time.monotonic()
        data = await GraphQLClient(http, token).data(ADD, {"g": group, "c": contacts})
    assert data["addGroupMembers"]["errors"] == [], data
    return time.monotonic() - started


@dataclass
class BulkOutcome:
    outcomes: Counter[str] = field(default_factory=Counter)
    """Rounds whose group ended with all the contacts, none, or some (a failure)."""
    problems: list[str] = field(default_factory=list)
    """Invariants broken afterwards (bench/load.py's)."""
    request_seconds: float = 0.0


async def bulk_crashes(database_url: str, rounds: int) -> BulkOutcome:
    """``rounds`` bulk adds, each killed at its own moment, spread over one and a half
    times what an uninterrupted one takes; then a restart, and the checks."""
    env = environment(database_url)
    token = admin_token(env)
    contacts = await insert_contacts(database_url, BULK)
    result = BulkOutcome()
    with tempfile.TemporaryFile("w+") as log:
        with serving(env, log=log) as (url, _):
            async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
                client = GraphQLClient(http, token)
                groups = [await new_group_id(client, name=f"Bulk {n}") for n in range(rounds + 1)]
            result.request_seconds = await timed_bulk_add(url, token, groups[0], contacts)
        for n, group in enumerate(groups[1:]):
            with serving(env, log=log) as (url, process):
                sending = asyncio.create_task(timed_bulk_add(url, token, group, contacts))
                # From the start of the request to well past the time it took unhurt: a
                # freshly started server answers its first request more slowly.
                await asyncio.sleep(1.5 * result.request_seconds * (n + 1) / (rounds + 1))
                process.kill()
                process.wait()
                with contextlib.suppress(httpx.TransportError):  # it died mid-request
                    await sending
        with serving(env, log=log) as (url, _):
            async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
                client = GraphQLClient(http, token)
                for group in groups[1:]:
                    count = (await client.data(COUNT, {"id": group}))["group"]["memberCount"]
                    result.outcomes[{0: "none", BULK: "all"}.get(count, "some")] += 1
                result.problems, _ = await invariant_problems(client, database_url, env)
    return result


class Inbox:
    """An SMTP handler keeping every message it receives (aiosmtpd calls it in its thread)."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"


@dataclass
class WorkerOutcome:
    deliveries: int = 0
    delivered: int = 0
    """Deliveries DELIVERED at the end."""
    messages: int = 0
    distinct: int = 0
    """Distinct Message-IDs among the messages received: the deliveries that arrived."""
    duplicates: int = 0
    """Messages received again under a Message-ID received before."""
    kills: int = 0
    kills_while_sending: int = 0
    """Kills after which the inbox had grown while that worker ran: it was mid-delivery."""


async def delivery_states(database_url: str) -> Counter[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(Delivery.status, func.count())
                .where(Delivery.plugin == "email_notifications")
                .group_by(Delivery.status)
            )
            return Counter({status.value: n for status, n in rows})
    finally:
        await engine.dispose()


async def start_worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *CLI,
        "worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def worker_crashes(database_url: str, rounds: int) -> WorkerOutcome:
    """``MAILS`` e-mails to new members; ``rounds`` workers killed mid-delivery, then one
    left to finish; what arrived."""
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = {
        **environment(database_url),
        "GRAPHQL_API_OUTBOX_IN_PROCESS_WORKER": "false",
        "GRAPHQL_API_OUTBOX_LEASE_SECONDS": "1",
        "GRAPHQL_API_OUTBOX_RETRY_BASE_SECONDS": "0",
        "GRAPHQL_API_OUTBOX_POLL_SECONDS": "0.1",
        "GRAPHQL_API_OUTBOX_BATCH_SIZE": "20",
        "GRAPHQL_API_SMTP_PORT": str(smtp.port),
        "GRAPHQL_API_SMTP_FROM": "groepen@zonnedael.coop",
    }
    token = admin_token(env)
    contacts = await insert_contacts(database_url, MAILS, email="lid@example.nl")
    outcome = WorkerOutcome()
    try:
        with serving(env) as (url, _):
            async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
                client = GraphQLClient(http, token)
                template = await new_template_id(client)
                group = await new_group_id(
                    client, name="Welkom", emailOnNewMember=True, newMemberEmailTemplateId=template
                )
                for start in range(0, MAILS, MAILS_PER_ADD):
                    chunk = contacts[start : start + MAILS_PER_ADD]
                    await client.data(ADD, {"g": group, "c": chunk})
        outcome.deliveries = (await delivery_states(database_url)).total()
        rng = random.Random(0)
        deadline = time.monotonic() + WAIT
        for _ in range(rounds):
            before = len(inbox.messages)
            worker = await start_worker(env)
            # Kill once it is sending: some of its batch out, the rest not yet. The inbox
            # fills in aiosmtpd's own thread and loop, so it is polled.
            while len(inbox.messages) == before and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.uniform(0, 0.2))
            worker.kill()
            await worker.wait()
            outcome.kills += 1
            outcome.kills_while_sending += len(inbox.messages) > before
            await asyncio.sleep(1.1)  # the dead worker's lease runs out
        worker = await start_worker(env)
        while (await delivery_states(database_url))["DELIVERED"] < outcome.deliveries:
            assert time.monotonic() < deadline, "the deliveries did not finish"
            await asyncio.sleep(0.2)
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 10)
        await asyncio.sleep(0.5)  # the last message's handler has returned
    finally:
        smtp.stop()
    ids = Counter(message["Message-ID"] for message in inbox.messages)
    outcome.delivered = (await delivery_states(database_url))[DeliveryStatus.DELIVERED.value]
    outcome.messages = len(inbox.messages)
    outcome.distinct = len(ids)
    outcome.duplicates = sum(n - 1 for n in ids.values())
    return outcome


@dataclass
class TerminateOutcome:
    terminations: int = 0
    connections_terminated: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    recovered: bool = False
    """Requests sent after the last termination all succeeded."""
    problems: list[str] = field(default_factory=list)


TERMINATE = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def terminations(database_url: str, rounds: int) -> TerminateOutcome:
    """Twenty writers for ``rounds`` seconds; each second every connection of the server
    is terminated; then plain requests, and the invariants."""
    env = environment(database_url)
    token = admin_token(env)
    outcome = TerminateOutcome()
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with tempfile.TemporaryFile("w+") as log:
        with serving(env, log=log) as (url, _):
            async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
                client = GraphQLClient(http, token)
                world = await prepare(client)
                writing = asyncio.create_task(load(url, token, world, 20, rounds + 1.0))
                for _ in range(rounds):
                    await asyncio.sleep(1)
                    async with engine.connect() as connection:
                        outcome.connections_terminated += await connection.scalar(TERMINATE)
                    outcome.terminations += 1
                report = await writing
                after = [await client.post(COUNT, {"id": world.statics[0]}) for _ in range(20)]
                outcome.recovered = all(
                    r.status_code == 200 and "errors" not in r.json() for r in after
                )
                outcome.problems, _ = await invariant_problems(client, database_url, env)
        outcome.faults = faults_in(log)
    await engine.dispose()
    outcome.statuses, outcome.codes, outcome.requests = (
        report.statuses,
        report.codes,
        report.requests,
    )
    return outcome


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fault", choices=["bulk", "worker", "terminate"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    url = await fresh_database()
    try:
        run = {"bulk": bulk_crashes, "worker": worker_crashes, "terminate": terminations}
        print(await run[args.fault](url, args.rounds))
    finally:
        await drop(url)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
