"""Concurrent writers against a real `graphql-api serve` on PostgreSQL, then the invariants.

Writers (50 by default) send real GraphQL requests for a bounded time: they add and remove
members of static groups, create contacts and edit their city (which moves them in and
out of dynamic groups), and redefine dynamic and composite groups. Every answer is
counted by HTTP status and by error code (top-level ``extensions.code`` and the
``errors { code }`` of payloads), with its latency. Then, with the writers stopped:

- every group's ``memberCount`` equals the number of its ``members``, read page by page,
  and those are the explicit rows (static groups) or the stored derived rows;
- ``graphql-api check-membership`` finds no difference with a computation from scratch;
- the membership history, replayed, gives exactly the current rows of each group;
- the outbox's ``members.added`` / ``members.removed`` events (each naming up to 1,000
  contacts of one group) name each history row's contact once: the same (group, contact,
  action) multiset.

By hand, on a fresh database on the local PostgreSQL (dropped afterwards)::

    .venv/bin/python bench/load.py --writers 50 --seconds 20

tests/test_load.py runs it for 10 seconds in the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphql_api.graphql_base.relay import parse_global_id, to_global_id
from graphql_api.groups.models import (
    DerivedMembership,
    Group,
    GroupKind,
    Membership,
    MembershipAction,
    MembershipEvent,
)
from graphql_api.kernel.db import create_engine
from graphql_api.migrations.runner import upgrade
from graphql_api.notifications.models import OutboxEvent
from graphql_api.settings import Settings
from graphql_api.testing import (
    GraphQLClient,
    cli,
    new_contact_ids,
    new_group_id,
    new_static_group_id,
    serving,
)
from graphql_api.web.app import load_plugins

POSTGRES_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CITIES = ["Zwolle", "Ede", "Utrecht", "Deventer"]
CONTACTS = 200
STATIC_GROUPS = 10

ADD = """mutation($g: ID!, $c: [ID!]!) { addGroupMembers(groupId: $g, contactIds: $c) {
  changedCount errors { code } } }"""
REMOVE = """mutation($g: ID!, $c: [ID!]!) { removeGroupMembers(groupId: $g, contactIds: $c) {
  changedCount errors { code } } }"""
EDIT = """mutation($id: ID!, $input: ContactInput!) { updateContact(id: $id, input: $input) {
  contact { id } errors { code } } }"""
CREATE = """mutation($input: ContactInput!) { createContact(input: $input) {
  contact { id } errors { code } } }"""
REDEFINE = """mutation($id: ID!, $input: UpdateGroupInput!) { updateGroup(id: $id, input: $input) {
  group { memberCount } errors { code } } }"""
MEMBERS = """query($id: ID!, $after: String) { group(id: $id) { memberCount
  members(first: 100, after: $after) { pageInfo { hasNextPage endCursor } nodes { id } } } }"""


@dataclass
class World:
    """The groups and contacts the writers work on (global ids)."""

    contacts: list[str]
    statics: list[str]
    dynamics: list[str]
    composites: list[str]


@dataclass
class Report:
    """What the writers' requests got back."""

    writers: int
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    """Top-level error codes and payload error codes, together."""
    operations: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    """Seconds, one per request."""
    transport_errors: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    """The server's logged faults (what became INTERNAL_SERVER_ERROR), by exception."""

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def percentile(self, p: int) -> float:
        """The ``p``th percentile of the latencies, in milliseconds."""
        return statistics.quantiles(self.latencies, n=100)[p - 1] * 1000

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def lines(self) -> list[str]:
        return [
            f"writers {self.writers}, {self.seconds:.1f} s, {self.requests} requests "
            f"({self.requests / self.seconds:.0f}/s)",
            f"by operation: {dict(self.operations)}",
            f"by HTTP status: {dict(self.statuses)}; 5xx: {self.server_errors}; "
            f"transport errors: {self.transport_errors}",
            f"errors by code: {dict(self.codes)}",
            f"server faults logged, by exception: {dict(self.faults)}",
            f"latency p50 {self.percentile(50):.0f} ms, p99 {self.percentile(99):.0f} ms",
        ]


async def prepare(client: GraphQLClient) -> World:
    """Contacts in four cities, static groups with some members, dynamic groups on the city
    and on a static group, composites of statics and dynamics."""
    contacts = [
        await new_contact_ids(client, f"Lid {n}", city=CITIES[n % len(CITIES)])
        for n in range(CONTACTS)
    ]
    ids = [c[0] for c in contacts]
    statics = [
        await new_static_group_id(client, f"Team {n}", ids[n * 10 : n * 10 + 10])
        for n in range(STATIC_GROUPS)
    ]
    dynamics = [
        await new_group_id(client, name=f"In {city}", filter=city_filter(city))
        for city in CITIES[:2]
    ]
    dynamics.append(
        await new_group_id(client, name="Team 0 of Ede", filter=member_filter(statics[0]))
    )
    composites = [
        await new_group_id(client, name=f"Samen {n}", composedOfIds=[statics[n], dynamics[n % 3]])
        for n in range(3)
    ]
    return World(ids, statics, dynamics, composites)


def city_filter(city: str) -> dict[str, Any]:
    return {"condition": {"field": "city", "op": "EQ", "value": city}}


def member_filter(group: str) -> dict[str, Any]:
    member = {"condition": {"field": "memberOf", "op": "EQ", "value": group}}
    return {"any": [member, city_filter("Ede")]}


def next_request(world: World, rng: random.Random) -> tuple[str, str, dict[str, Any]]:
    """One writer's next request: (operation, document, variables)."""
    roll = rng.random()
    if roll < 0.30:
        members = rng.sample(world.contacts, rng.randint(1, 5))
        return "add", ADD, {"g": rng.choice(world.statics), "c": members}
    if roll < 0.55:
        members = rng.sample(world.contacts, rng.randint(1, 5))
        return "remove", REMOVE, {"g": rng.choice(world.statics), "c": members}
    if roll < 0.75:
        edit = {"lastName": "Lid", "city": rng.choice(CITIES)}
        return "edit contact", EDIT, {"id": rng.choice(world.contacts), "input": edit}
    if roll < 0.80:
        return "create contact", CREATE, {"input": {"lastName": "Nieuw", "city": "Ede"}}
    if roll < 0.90:
        group = rng.choice(world.dynamics)
        definition = (
            member_filter(rng.choice(world.statics))
            if group == world.dynamics[-1]
            else city_filter(rng.choice(CITIES))
        )
        return "redefine dynamic", REDEFINE, {"id": group, "input": {"filter": definition}}
    parts = rng.sample(world.statics + world.dynamics, 3)
    definition = {
        "composedOfIds": parts[:2],
        "excludedGroupIds": parts[2:] if rng.random() < 0.5 else [],
        "compositionMode": rng.choice(["ANY", "ALL"]),
    }
    return "redefine composite", REDEFINE, {"id": rng.choice(world.composites), "input": definition}


def codes_of(body: Any) -> list[str]:
    """Top-level error codes and the codes of payload ``errors``."""
    codes = [
        (error.get("extensions") or {}).get("code", "(none)") for error in body.get("errors") or []
    ]
    for payload in (body.get("data") or {}).values():
        codes += [error["code"] for error in (payload or {}).get("errors") or []]
    return codes


async def write(
    http: httpx.AsyncClient,
    token: str,
    world: World,
    report: Report,
    rng: random.Random,
    end: float,
) -> None:
    """One writer: request after request until ``end``."""
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < end:
        operation, document, variables = next_request(world, rng)
        started = time.monotonic()
        try:
            response = await http.post(
                "/graphql", json={"query": document, "variables": variables}, headers=headers
            )
        except httpx.TransportError:
            report.transport_errors += 1
            continue
        report.latencies.append(time.monotonic() - started)
        report.operations[operation] += 1
        report.statuses[response.status_code] += 1
        body = response.json()
        report.codes.update(codes_of(body))
        created = (body.get("data") or {}).get("createContact") or {}
        if created.get("contact"):
            world.contacts.append(created["contact"]["id"])


async def load(url: str, token: str, world: World, writers: int, seconds: float) -> Report:
    """``writers`` concurrent writers for ``seconds``; what they got back."""
    report = Report(writers)
    limits = httpx.Limits(max_connections=writers)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        started = time.monotonic()
        end = started + seconds
        await asyncio.gather(
            *(write(http, token, world, report, random.Random(n), end) for n in range(writers))
        )
        report.seconds = time.monotonic() - started
    return report


def _key(global_id: str) -> int:
    parsed = parse_global_id(global_id)
    assert parsed is not None, global_id
    return parsed[1]


async def listed_members(client: GraphQLClient, group: str) -> tuple[int, list[int]]:
    """A group's ``memberCount`` and its members, every page of them."""
    members: list[int] = []
    after = None
    while True:
        data = (await client.data(MEMBERS, {"id": group, "after": after}))["group"]
        page = data["members"]
        members += [_key(node["id"]) for node in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            return data["memberCount"], members
        after = page["pageInfo"]["endCursor"]


async def stored(database_url: str) -> dict[str, Any]:
    """Each group's kind, its explicit or derived rows, its replayed history, and the
    (group, contact, action) multisets of the history and of the outbox."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            kinds = dict((await connection.execute(select(Group.id, Group.kind))).all())
            rows: dict[int, set[int]] = {group: set() for group in kinds}
            for model in (Membership, DerivedMembership):
                for group, contact in await connection.execute(
                    select(model.group_id, model.contact_id)
                ):
                    rows[group].add(contact)
            replayed: dict[int, set[int]] = {group: set() for group in kinds}
            history: Counter[tuple[int, int, str]] = Counter()
            events = select(
                MembershipEvent.group_id, MembershipEvent.contact_id, MembershipEvent.action
            ).order_by(MembershipEvent.id)
            for group, contact, action in await connection.execute(events):
                history[(group, contact, action.value)] += 1
                if action is MembershipAction.ADDED:
                    replayed[group].add(contact)
                else:
                    replayed[group].discard(contact)
            outbox: Counter[tuple[int, int, str]] = Counter()
            membership_events = select(OutboxEvent.type, OutboxEvent.data).where(
                OutboxEvent.type.in_(["members.added", "members.removed"])
            )
            for kind, data in await connection.execute(membership_events):
                action = "ADDED" if kind == "members.added" else "REMOVED"
                for contact in data["contactIds"]:  # up to 1,000 an event (plugin API 2)
                    outbox[(data["group"]["id"], contact, action)] += 1
    finally:
        await engine.dispose()
    return {
        "kinds": kinds,
        "rows": rows,
        "replayed": replayed,
        "history": history,
        "outbox": outbox,
    }


async def invariant_problems(
    client: GraphQLClient, database_url: str, env: Mapping[str, str]
) -> tuple[list[str], dict[str, int]]:
    """What breaks the invariants (nothing, we hope), and what was checked, counted."""
    found = await stored(database_url)
    problems = []
    for group, kind in found["kinds"].items():
        count, members = await listed_members(client, to_global_id("Group", group))
        if count != len(members) or len(set(members)) != len(members):
            problems.append(f"group {group}: memberCount {count}, {len(members)} listed")
        if set(members) != found["rows"][group]:
            problems.append(f"group {group} ({kind}): members listed are not the stored rows")
        if found["replayed"][group] != found["rows"][group]:
            problems.append(f"group {group} ({kind}): the replayed history is not the rows")
    if found["history"] != found["outbox"]:
        difference = (found["history"] - found["outbox"]) + (found["outbox"] - found["history"])
        problems.append(f"history and outbox differ in {sum(difference.values())} changes")
    checked = cli(env, "check-membership")
    if checked.returncode != 0:
        problems.append(f"check-membership: {checked.stdout}{checked.stderr}")
    static = sum(kind is GroupKind.STATIC for kind in found["kinds"].values())
    counts = {
        "static groups": static,
        "derived groups": len(found["kinds"]) - static,
        "history rows": sum(found["history"].values()),
        "contacts in outbox membership events": sum(found["outbox"].values()),
        "current memberships": sum(len(rows) for rows in found["rows"].values()),
    }
    return problems, counts


def environment(database_url: str) -> dict[str, str]:
    """`graphql-api`'s environment on ``database_url``, logging JSON lines."""
    return {
        **os.environ,
        "GRAPHQL_API_DATABASE_URL": database_url,
        "GRAPHQL_API_DEV_MODE": "false",
        "GRAPHQL_API_LOG_FORMAT": "json",
    }


def admin_token(env: Mapping[str, str], name: str = "Load") -> str:
    """The API token of a new admin, made with `graphql-api create-user`."""
    email = f"{name.lower()}@example.coop"
    made = cli(env, "create-user", "--name", name, "--email", email, "--role", "admin")
    assert made.returncode == 0, made.stderr
    return made.stdout.split()[-1]


def faults_in(log: IO[str]) -> Counter[str]:
    """The errors a JSON log records with a traceback, by the exception at its end and
    its message (``DBAPIError: deadlock detected``)."""
    log.seek(0)
    faults: Counter[str] = Counter()
    for line in log:
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("level") == "ERROR" and "exception" in entry:
            lines = entry["exception"].splitlines()
            raised = [line for line in lines if re.match(r"[\w.]*(Error|Exception)\b", line)]
            name, _, message = raised[-1].partition(": ")
            message = re.sub(r"^\([\w.]+\) ", "", message)  # the driver's class, for once
            faults[f"{name.rsplit('.', 1)[-1]}: {message[:80]}"] += 1
    return faults


async def run(
    database_url: str, writers: int, seconds: float, log_path: Path | None = None
) -> tuple[Report, list[str], dict[str, int]]:
    """Serve ``database_url`` (migrated, empty), prepare the world, load it, check it;
    the server's log goes to ``log_path``, if given."""
    env = environment(database_url)
    token = admin_token(env)
    with log_path.open("w+") if log_path else tempfile.TemporaryFile("w+") as log:
        with serving(env, log=log) as (url, _):
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                client = GraphQLClient(http, token)
                world = await prepare(client)
                report = await load(url, token, world, writers, seconds)
                problems, counts = await invariant_problems(client, database_url, env)
        report.faults = faults_in(log)
    return report, problems, counts


async def fresh_database() -> str:
    """A new, migrated database on the local PostgreSQL."""
    name = f"graphql_api_load_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = make_url(POSTGRES_SERVER).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    await upgrade(engine, load_plugins(Settings()).migrations())
    await engine.dispose()
    return url


async def drop(url: str) -> None:
    admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        name = make_url(url).database
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--log", type=Path, help="keep the server's log (JSON lines) here")
    args = parser.parse_args()
    url = await fresh_database()
    try:
        report, problems, counts = await run(url, args.writers, args.seconds, args.log)
    finally:
        await drop(url)
    print("\n".join([*report.lines(), f"checked: {counts}", f"invariants broken: {problems}"]))
    return 1 if problems or report.server_errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
