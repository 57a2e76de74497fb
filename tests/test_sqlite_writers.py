"""Concurrent writers keep derived data exact, on SQLite (the default database) as on
PostgreSQL.

On SQLite every mutation's transaction takes the database's write lock at its start
(``BEGIN IMMEDIATE``: see ``kernel.writing``, used by ``run_mutation``), so its checks
(cycles, a composite's explicit members) and the derived refresh read what they write
over; reads take no lock. The lock is SQLite's own, on the file: it orders the writers of
every process (``serve --workers``, ``graphql-api worker``), which the first test shows
with a writer in another process. Within a process, writers also queue for their turn
(``writer_turn``), so none waits out the busy timeout while others keep winning the lock.

- ``test_a_mutation_waits_for_a_writer_of_another_process_then_sees_its_link``: another
  process holds an uncommitted link A -> B; ``updateGroup(B, composedOfIds: [A])`` waits
  for it (reads do not), then sees it: CYCLE.
- ``test_a_writer_waiting_past_the_busy_timeout_gets_conflict`` and
  ``test_a_writer_waiting_past_its_turn_gets_conflict``: SQLite only; a mutation that
  cannot get the write lock (held by another connection) or its turn among this process's
  writers (``writer_turn``) within the busy timeout answers CONFLICT, never 500.
- ``test_concurrent_writers_keep_derived_membership_exact``: the seeded random writers
  described there, compared with ``groups.derived.differences`` after each step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from graphlib import CycleError, TopologicalSorter
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from graphql_api.graphql_base.mutations import CONFLICT_MESSAGE
from graphql_api.graphql_base.relay import parse_global_id
from graphql_api.groups.derived import differences
from graphql_api.groups.models import Group, GroupKind, Membership
from graphql_api.kernel import writing
from graphql_api.testing import (
    ADD_MEMBERS,
    GROUP_COUNT,
    REMOVE_MEMBERS,
    UPDATE_CONTACT,
    UPDATE_GROUP,
    GraphQLClient,
    database_rows,
    make_user,
    new_contact_id,
    new_contact_ids,
    new_group_id,
    new_static_group_id,
)
from graphql_api.users.models import ApiToken, User

TIMEOUT = 30.0
"""Seconds any one step may take, so that a failing test fails instead of hanging."""
STILL_WAITING = 0.5
"""Seconds the mutation must stay unfinished while the other process holds its lock."""


def _local_id(global_id: str) -> int:
    parsed = parse_global_id(global_id)
    assert parsed is not None
    return parsed[1]


def _payload(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    [payload] = body["data"].values()
    return payload


def _codes(body: dict[str, Any]) -> set[str]:
    """The payload's error codes (none: it succeeded); any top-level error, such as an
    ``INTERNAL_SERVER_ERROR``, fails the test."""
    return {error["code"] for error in _payload(body)["errors"]}


async def _exact(app: Any, step: object) -> None:
    """No cycle in the group graph, no explicit member of a derived group, and nothing
    ``differences`` (``graphql-api check-membership``) finds: stored derived rows and every
    ``member_count`` equal a computation from scratch."""
    async with app.state.sessions() as session:
        graph: dict[int, set[int]] = {}
        for group, member in await session.execute(
            text("SELECT group_id, member_group_id FROM group_links")
        ):
            graph.setdefault(group, set()).add(member)
        try:
            TopologicalSorter(graph).prepare()
        except CycleError as error:
            raise AssertionError((step, "cycle", error.args[1])) from error
        explicit = list(
            await session.execute(
                select(Membership.group_id, Membership.contact_id)
                .join(Group, Group.id == Membership.group_id)
                .where(Group.kind != GroupKind.STATIC)
            )
        )
        assert explicit == [], (step, "explicit members of derived groups", explicit)
        assert await differences(session) == [], step


# Another process's writer ---------------------------------------------------------------

OTHER_WRITER = """
import asyncio, sys
from sqlalchemy import text
from graphql_api.groups.graph import GRAPH_LOCK
from graphql_api.kernel.db import create_engine

async def main(url, group, part):
    engine = create_engine(url)
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": GRAPH_LOCK})
        # What updateGroup(group, composedOfIds: [part]) writes, left uncommitted: on
        # SQLite the first write takes the database's write lock, as any writer's does.
        await connection.execute(
            text("UPDATE groups SET kind = 'COMPOSITE' WHERE id = :g"), {"g": group}
        )
        await connection.execute(
            text("INSERT INTO group_links (group_id, member_group_id, role, position) "
                 "VALUES (:g, :p, 'INCLUDE', 0)"),
            {"g": group, "p": part},
        )
        print("holding", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await connection.commit()
    await engine.dispose()
    print("committed", flush=True)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def test_a_mutation_waits_for_a_writer_of_another_process_then_sees_its_link(
    database_url: str, app: Any, client: GraphQLClient
) -> None:
    """Another process (as a second ``serve`` worker or ``graphql-api worker`` would be)
    links A -> B and keeps its transaction open. ``updateGroup(B, composedOfIds: [A])``
    in this one must wait for it; a read need not. Once the other commits, the update sees
    the link and is refused: CYCLE, and the graph has no cycle.

    Before writers took SQLite's write lock at their start, the update read the graph
    without the other's link, found no cycle, waited only at its first write, and then
    wrote B -> A: a cycle, and an INTERNAL_SERVER_ERROR when its refresh ordered it."""
    a = await new_group_id(client, name="Noord")
    b = await new_group_id(client, name="Zuid")
    other = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", OTHER_WRITER, database_url, str(_local_id(a)), str(_local_id(b))],
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert other.stdin is not None and other.stdout is not None
    try:
        held = await asyncio.wait_for(other.stdout.readline(), TIMEOUT)
        assert held.strip() == b"holding", held
        update = asyncio.create_task(
            client.execute(UPDATE_GROUP, {"id": b, "input": {"composedOfIds": [a]}})
        )
        # The other process lets go of the write lock only when told, below: a read that
        # waited for it could not answer here (a timing bound would only measure the
        # machine's load).
        assert await asyncio.wait_for(client.data(GROUP_COUNT), TIMEOUT) == {
            "groups": {"totalCount": 2}
        }
        await asyncio.sleep(STILL_WAITING)
        assert not update.done(), f"the update did not wait: {update.result()}"
        other.stdin.write(b"go\n")
        await other.stdin.drain()
        body = await asyncio.wait_for(update, TIMEOUT)
    finally:
        other.stdin.close()
        await asyncio.wait_for(other.wait(), TIMEOUT)
    assert other.returncode == 0
    assert _codes(body) == {"CYCLE"}, body
    assert _payload(body)["errors"][0]["message"] == (
        "This would make a group contain itself: Zuid -> Noord -> Zuid."
    )
    await _exact(app, "after the other process's link")


async def _short_busy_app(
    database_url: str, app_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, str]:
    """An app on SQLite whose writers wait 200 ms, not 5 s, for the write lock and for
    their turn; an admin's token."""
    if make_url(database_url).get_backend_name() != "sqlite":
        pytest.skip("SQLite's busy timeout; PostgreSQL's writers wait on its locks")
    monkeypatch.setattr(writing, "SQLITE_BUSY_TIMEOUT_MS", 200, raising=False)
    app = app_factory()
    _, token = await make_user(app, "Johannes", "johannes@example.coop", admin=True)
    return app, token


async def _refused_while(
    app: Any, client: GraphQLClient, caplog: pytest.LogCaptureFixture, held: Any
) -> None:
    """While ``held`` (a context manager) keeps writers out: a read is answered, and
    addGroupMembers waits about the busy timeout, then answers CONFLICT in its payload,
    keeps nothing and logs no error. Once it is let go the same add succeeds."""
    group = await new_group_id(client, name="Bestuur")
    (contact,) = await new_contact_ids(client, "Jansen")
    before = await database_rows(app)
    caplog.set_level(logging.INFO, logger="graphql_api")
    caplog.clear()
    async with held:
        assert await client.data(GROUP_COUNT) == {"groups": {"totalCount": 1}}
        started = time.perf_counter()
        body = await asyncio.wait_for(
            client.execute(ADD_MEMBERS, {"groupId": group, "contactIds": [contact]}), TIMEOUT
        )
        waited = time.perf_counter() - started
    assert _payload(body)["errors"] == [
        {"field": None, "code": "CONFLICT", "message": CONFLICT_MESSAGE}
    ], body
    assert 0.2 <= waited < 3.0, waited
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert await database_rows(app) == before, "the refused mutation kept something"
    added = await client.data(ADD_MEMBERS, {"groupId": group, "contactIds": [contact]})
    assert added["addGroupMembers"]["changedCount"] == 1


@contextlib.asynccontextmanager
async def _write_lock_of_another_connection(database_url: str) -> AsyncIterator[None]:
    """SQLite's write lock, held by a connection of its own (as another process would)."""
    path = make_url(database_url).database
    assert path is not None
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_writer_waiting_past_the_busy_timeout_gets_conflict(
    database_url: str,
    app_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another connection holds SQLite's write lock longer than the busy timeout: a
    mutation waits the busy timeout, then answers CONFLICT (before: an
    INTERNAL_SERVER_ERROR, "database is locked"); reads go on meanwhile."""
    app, token = await _short_busy_app(database_url, app_factory, monkeypatch)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        held = _write_lock_of_another_connection(database_url)
        await _refused_while(app, GraphQLClient(http, token), caplog, held)


async def test_a_read_is_answered_while_its_token_cannot_note_its_use(
    database_url: str, app_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token's first request notes ``lastUsedAt``, a write. While another connection
    holds SQLite's write lock (a worker's import chunk), that note waits the busy timeout
    and is left for later: the request, a read, is answered all the same (before: 500)."""
    app, _ = await _short_busy_app(database_url, app_factory, monkeypatch)
    _, fresh = await make_user(app, "Nieuw", "nieuw@example.coop", admin=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        async with _write_lock_of_another_connection(database_url):
            answered = await GraphQLClient(http, fresh).data("{ me { user { name } } }")
        assert answered == {"me": {"user": {"name": "Nieuw"}}}
    async with app.state.sessions() as session:
        noted = await session.scalars(
            select(ApiToken.last_used_at).join(User).where(User.email == "nieuw@example.coop")
        )
        assert list(noted) == [None]


async def test_a_writer_waiting_past_its_turn_gets_conflict(
    database_url: str,
    app_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A writer of this process keeps its turn (``writer_turn``) longer than the busy
    timeout: the next one waits in the queue that long, then answers CONFLICT."""
    app, token = await _short_busy_app(database_url, app_factory, monkeypatch)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        held = writing.writer_turn(app.state.engine)
        await _refused_while(app, GraphQLClient(http, token), caplog, held)


# Seeded random concurrent writers -------------------------------------------------------

SEED = 20_240_611
STEPS = 30
"""Steps of the random writers, unless ``STEP_SECONDS`` run out first."""
STEP_SECONDS = 20.0
WRITERS = 6
"""Mutations sent at once in each step."""
CITIES = ["Zwolle", "Ede", "Utrecht"]
REFUSALS = {
    "ALREADY_STATIC",
    "CYCLE",
    "HAS_MEMBERS",
    "NOT_STATIC",
    "GROUP_IN_USE",
    "NOT_FOUND",
    "KIND_CONFLICT",
    "CONFLICT",
}
"""What a mutation of the mix may be refused with: its target changed kind (or is static
already, for a conversion), was deleted or is in use, it would close a cycle, or a
concurrent change won a race. An edit of a contact that a mutation of the same step erased
may also find it nameless (``REQUIRED``)."""

DELETE = "mutation($id: ID!) { deleteGroup(id: $id) { deletedId errors { field code message } } }"
CONVERT = """mutation($id: ID!) { convertToStatic(groupId: $id) {
  group { id } errors { field code message } } }"""
ERASE = """mutation($id: ID!) { eraseContact(contactId: $id) { errors { field code message } } }"""


class _Writers:
    """The random mix, drawn from ``random.Random(SEED)``; the groups and contacts it
    knows, which deletions and erasures shrink."""

    def __init__(self, client: GraphQLClient, draw: random.Random) -> None:
        self.client = client
        self.draw = draw
        self.contacts: list[str] = []
        self.groups: list[str] = []
        self.made = 0

    def _some(self, items: list[str], most: int) -> list[str]:
        return self.draw.sample(items, self.draw.randint(1, min(most, len(items))))

    def _city(self) -> dict[str, Any]:
        return {"condition": {"field": "city", "op": "EQ", "value": self.draw.choice(CITIES)}}

    def mutation(self) -> Callable[[], Awaitable[dict[str, Any]]]:
        """One mutation of the mix, ready to send."""
        draw, groups, contacts = self.draw, self.groups, self.contacts
        kind = draw.choices(
            ["add", "remove", "compose", "filter", "move", "delete", "convert", "erase"],
            weights=[25, 15, 15, 10, 20, 5, 5, 5],
        )[0]
        if kind in ("add", "remove") and groups and contacts:
            document = ADD_MEMBERS if kind == "add" else REMOVE_MEMBERS
            variables: dict[str, Any] = {
                "groupId": draw.choice(groups),
                "contactIds": self._some(contacts, 3),
            }
        elif kind == "compose" and len(groups) > 1:
            group, *others = draw.sample(groups, len(groups))
            included = self._some(others, 2)
            rest = [g for g in others if g not in included]
            values: dict[str, Any] = {
                "composedOfIds": included,
                "compositionMode": draw.choice(["ANY", "ALL"]),
            }
            if rest and draw.random() < 0.5:
                values["excludedGroupIds"] = [draw.choice(rest)]
            document, variables = UPDATE_GROUP, {"id": group, "input": values}
        elif kind == "filter" and groups:
            group = draw.choice(groups)
            tree = self._city()
            others = [g for g in groups if g != group]
            if others and draw.random() < 0.5:
                member = {
                    "condition": {
                        "field": "memberOf",
                        "op": draw.choice(["EQ", "NEQ"]),
                        "value": draw.choice(others),
                    }
                }
                tree = {draw.choice(["all", "any"]): [tree, member]}
            document, variables = UPDATE_GROUP, {"id": group, "input": {"filter": tree}}
        elif kind == "delete" and groups:
            document, variables = DELETE, {"id": draw.choice(groups)}
        elif kind == "convert" and groups:
            document, variables = CONVERT, {"id": draw.choice(groups)}
        elif kind == "erase" and len(contacts) > 4:
            contact = draw.choice(contacts)
            contacts.remove(contact)  # erased: no longer a name to move
            document, variables = ERASE, {"id": contact}
        elif contacts:
            city = draw.choice([*CITIES, None])
            document = UPDATE_CONTACT
            variables = {"id": draw.choice(contacts), "input": {"city": city}}
        else:
            document, variables = GROUP_COUNT, {}
        return lambda: self.client.execute(document, variables)

    async def replenish(self) -> None:
        """Keep at least six groups and six contacts: make new ones, static or dynamic."""
        while len(self.contacts) < 6:
            self.made += 1
            self.contacts += await new_contact_ids(
                self.client, f"Nieuw {self.made}", city=self.draw.choice(CITIES)
            )
        while len(self.groups) < 6:
            self.made += 1
            if self.draw.random() < 0.5:
                group = await new_static_group_id(
                    self.client, f"Groep {self.made}", self._some(self.contacts, 3)
                )
            else:
                group = await new_group_id(
                    self.client, name=f"Groep {self.made}", filter=self._city()
                )
            self.groups.append(group)

    async def forget_deleted(self) -> None:
        """Drop the groups a step deleted."""
        data = await self.client.data("{ groups(first: 100) { nodes { id } } }")
        alive = {node["id"] for node in data["groups"]["nodes"]}
        self.groups = [g for g in self.groups if g in alive]


async def test_concurrent_writers_keep_derived_membership_exact(
    app: Any, client: GraphQLClient
) -> None:
    """Seeded random writers, ``WRITERS`` mutations at once per step, for ``STEPS`` steps
    (or ``STEP_SECONDS``), through the API of one application; after every step
    ``differences`` (``graphql-api check-membership``) finds nothing, no derived group has
    explicit members and the graph has no cycle.

    It starts from 8 contacts in the cities Zwolle, Ede and Utrecht, 3 static groups
    holding 1 to 3 of them, a dynamic group on the city, and composites (a static one ANY the dynamic one,
    and ALL of two statics minus the third). Each step sends, drawn from
    ``random.Random(SEED)`` by weight: adds (25) and removes (15) of 1 to 3 contacts on a
    random group (NOT_STATIC when it is derived by then); composition changes (15): a
    random group made a composite of 1 or 2 others, ANY or ALL, half of them with one
    excluded group (a static one with members is refused HAS_MEMBERS, a loop CYCLE);
    filter changes (10): a random group made dynamic on a city, half of them ``all``/``any``
    with ``memberOf`` EQ or NEQ another group; contact edits (20) that set a contact's
    city to one of the three or none, moving it into and out of dynamic groups; deletions
    of a group (5, GROUP_IN_USE while another reads it), conversions to static (5) and
    erasures of a contact (5, its city goes). Every answer must succeed or be refused
    with one of ``REFUSALS`` (or ``REQUIRED``, an edit of a contact erased in the same
    step); a top-level error fails the test. After each step, groups
    and contacts are made again up to six of each."""
    draw = random.Random(SEED)
    writers = _Writers(client, draw)
    writers.contacts = [
        await new_contact_id(client, lastName=f"Lid {i}", city=CITIES[i % len(CITIES)])
        for i in range(8)
    ]
    statics = [
        await new_static_group_id(client, f"Vast {i}", writers.contacts[i : i + 1 + i])
        for i in range(3)
    ]
    dynamic = await new_group_id(client, name="Zwolle", filter=writers._city())
    writers.groups = [
        *statics,
        dynamic,
        await new_group_id(client, name="Samen", composedOfIds=[statics[0], dynamic]),
        await new_group_id(
            client,
            name="Beide",
            composedOfIds=statics[:2],
            compositionMode="ALL",
            excludedGroupIds=[statics[2]],
        ),
    ]
    await _exact(app, "start")
    deadline = time.monotonic() + STEP_SECONDS
    sent = 0
    for step in range(STEPS):
        if step and time.monotonic() > deadline:
            break
        mutations = [writers.mutation() for _ in range(WRITERS)]
        bodies = await asyncio.wait_for(asyncio.gather(*(m() for m in mutations)), TIMEOUT)
        for body in bodies:
            data = body.get("data") or {}
            if "groups" in data:
                continue  # a read, when nothing else could be drawn
            allowed = REFUSALS | ({"REQUIRED"} if "updateContact" in data else set())
            assert _codes(body) <= allowed, (step, body)
        sent += len(bodies)
        await _exact(app, step)
        await writers.forget_deleted()
        await writers.replenish()
    assert sent >= 10 * WRITERS, sent
