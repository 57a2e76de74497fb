"""Concurrency: each lock, shown preventing the race it exists for, on both databases.

The races fired at once run on SQLite and on PostgreSQL. On SQLite every mutation's
transaction takes the database's write lock at its start (``BEGIN IMMEDIATE``: see
``kernel.writing``, used by ``run_mutation``), so its checks and the derived refresh read
what they write over; on PostgreSQL the locks below see to it:

- the advisory lock on the group graph (``groups.graph.lock_graph``), taken before the
  cycle check: two changes cannot close a cycle between them;
- ``FOR NO KEY UPDATE`` on the added contacts in the role rules (``roles.core_plugin``):
  one contact cannot get two roles from two concurrent adds;
- the unique index on ``groups.name_key`` and ``run_mutation``'s ``IntegrityError`` ->
  ``CONFLICT``: two creates of one name, both past the name check, give one group and a
  ``CONFLICT``, never an internal error.

The paused tests (PostgreSQL only: they watch ``pg_stat_activity``) hold request 1 open
inside its transaction with a test plugin whose ``apply_change`` (it runs after every
``validate_change``, so after the locks are taken and the rows written) waits for the test.
Request 2 is then seen in ``pg_stat_activity`` waiting on a lock, and still unfinished a
moment later, before request 1 is let go. ``tests/test_sqlite_writers.py`` shows SQLite's
lock held by another process the same way.

The unpaused tests fire both requests at once, round after round (``ROUNDS``, or as many
as ``ROUND_SECONDS`` allow). Exactly one may succeed, the other must get the expected
refusal, and after every round the database must keep the rules (``_exact``): no cycle, no
explicit member of a derived group, every ``memberCount`` the real count, and nothing
``groups.derived.differences`` (what ``graphql-api check-membership`` runs) finds. An
``INTERNAL_SERVER_ERROR`` or any other top-level error fails the test, and so does a
deadlock PostgreSQL detected: locks are taken in one order (the graph's lock before rows;
NO KEY UPDATE, which the foreign keys' KEY SHARE does not block), so none can happen.

Should one happen all the same (a plugin taking locks of its own, say), ``run_mutation``
runs the transaction again, and answers ``CONFLICT`` once its attempts are spent: the
last tests force a deadlock with a connection of their own to show both.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any

import graphql_api_coach
import graphql_api_projectleider
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from graphql_api.graphql_base.mutations import CONFLICT_MESSAGE
from graphql_api.graphql_base.relay import parse_global_id
from graphql_api.groups.changes import Change, GroupCreated, GroupUpdated, MembersAdded
from graphql_api.groups.derived import differences
from graphql_api.groups.graph import GRAPH_LOCK
from graphql_api.groups.models import Group, GroupKind, Membership
from graphql_api.plugin import hookimpl
from graphql_api.testing import (
    ADD_MEMBERS,
    CREATE_GROUP,
    GROUP_COUNT,
    REMOVE_MEMBERS,
    UPDATE_GROUP,
    GraphQLClient,
    make_user,
    new_contact_ids,
    new_group_id,
    new_static_group_id,
)

TIMEOUT = 20.0
"""Seconds any one step may take, so that a failing test fails instead of hanging."""
STILL_WAITING = 0.3
"""Seconds request 2 must stay unfinished once it is seen waiting on a lock."""
ROUNDS = 20
"""Rounds of each unpaused race, unless ``ROUND_SECONDS`` run out first."""
ROUND_SECONDS = 20.0
"""No new round of a race starts once this long has passed since its first."""
DEADLOCK_DETECTED = "40P01"
"""PostgreSQL's SQLSTATE for a transaction it aborted to break a deadlock."""

Send = Callable[[], Awaitable[dict[str, Any]]]

WAITING_ON_LOCKS = text(
    """
    SELECT wait_event FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND pid <> pg_backend_pid()
    """
)
"""What the other connections to the test database wait for, when it is a lock."""

ROLES = """query($id: ID!) { contact(id: $id) { isCoach isProjectLeader } }"""
COUNTED = """query($id: ID!) { group(id: $id) { name memberCount members { totalCount } } }"""


class _Gate:
    """A plugin that holds the first change of one type open inside its transaction,
    until the test lets it go."""

    PLUGIN_NAME = "concurrency_gate"

    def __init__(self) -> None:
        self.armed: type[Change] | None = None
        self.paused = asyncio.Event()
        self.release = asyncio.Event()

    def arm(self, change_type: type[Change]) -> None:
        self.armed = change_type
        self.paused.clear()
        self.release.clear()

    @hookimpl
    async def apply_change(self, change: Change) -> None:
        if self.armed is not None and isinstance(change, self.armed):
            self.armed = None  # the first such change only
            self.paused.set()
            await asyncio.wait_for(self.release.wait(), TIMEOUT)


@dataclass
class _Race:
    app: Any
    client: GraphQLClient
    gate: _Gate
    caplog: pytest.LogCaptureFixture

    def send(self, query: str, variables: dict[str, Any]) -> Send:
        return lambda: self.client.execute(query, variables)


@pytest.fixture
async def race(
    app_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> AsyncIterator[_Race]:
    """An app with the gate and both role plugins, and an admin's client, on the database
    of the run (``app_factory`` empties the tables after the test)."""
    gate = _Gate()
    app = app_factory(plugins=[gate, graphql_api_coach.plugin, graphql_api_projectleider.plugin])
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    caplog.set_level(logging.ERROR, logger="graphql_api")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        try:
            yield _Race(app, GraphQLClient(http, token), gate, caplog)
        finally:
            gate.release.set()  # never leave a request waiting on the gate


@pytest.fixture
def postgresql_only(database_url: str) -> None:
    """For the tests that watch PostgreSQL's locks: ``pg_stat_activity``, its advisory
    lock, its deadlock detector."""
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("watches PostgreSQL's own locks (pg_stat_activity, deadlock detection)")


ON_POSTGRESQL = pytest.mark.usefixtures("postgresql_only")


# Running the races ---------------------------------------------------------------------


async def _paused(
    race: _Race, change_type: type[Change], first: Send, second: Send, waits_on: str
) -> list[dict[str, Any]]:
    """Run ``first`` until its ``change_type`` change is written and its locks are held;
    then ``second``, which must wait on a lock (``waits_on``, the wait event
    ``pg_stat_activity`` shows) and stay unfinished; then let ``first`` commit. Both
    answers, in order."""
    race.gate.arm(change_type)
    tasks = [asyncio.create_task(first())]
    try:
        await _first_done(race.gate.paused.wait(), tasks[0])
        assert race.gate.paused.is_set(), f"request 1 ended unpaused: {tasks[0].result()}"
        tasks.append(asyncio.create_task(second()))
        waiting = await _lock_wait(race.app, tasks[1])
        assert waiting == waits_on, f"request 2 waits on {waiting!r}, not on {waits_on!r}"
        await asyncio.sleep(STILL_WAITING)
        assert not tasks[1].done(), "request 2 stopped waiting while request 1 held its locks"
    finally:
        race.gate.release.set()
        await asyncio.wait(tasks, timeout=TIMEOUT)
    return [task.result() for task in tasks]


async def _first_done(awaitable: Awaitable[Any], task: asyncio.Task[Any]) -> None:
    """Wait (boundedly) until ``awaitable`` completes or ``task`` ends."""
    other = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({other, task}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    finally:
        other.cancel()


async def _lock_wait(app: Any, task: asyncio.Task[dict[str, Any]]) -> str:
    """The wait event of the connection waiting on a lock, once one does: request 2's, as
    request 1 is paused in Python, not waiting in the database. Fails if ``task`` (request
    2) finishes first: nothing made it wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    async with app.state.engine.connect() as connection:
        while loop.time() < deadline:
            assert not task.done(), (
                f"request 2 finished while request 1 held its transaction open: {task.result()}"
            )
            waiting = list(await connection.scalars(WAITING_ON_LOCKS))
            await connection.rollback()  # a fresh statistics snapshot next time
            if waiting:
                assert len(waiting) == 1, waiting
                return waiting[0]
            await asyncio.sleep(0.02)
    raise AssertionError("request 2 neither finished nor waited on a lock")


async def _at_once(race: _Race, first: Send, second: Send) -> list[str]:
    """Both requests fired together, unpaused; their outcomes, in order (see ``_outcome``).
    A request that failed whole with ``INTERNAL_SERVER_ERROR`` because PostgreSQL aborted
    its transaction to break a deadlock is ``DEADLOCK``."""
    race.caplog.clear()
    bodies = await asyncio.wait_for(asyncio.gather(first(), second()), TIMEOUT)
    outcomes = [_outcome(body) for body in bodies]
    failed_whole = [i for i, body in enumerate(bodies) if _failed_whole(body)]
    if failed_whole and len(failed_whole) == _deadlocks_logged(race.caplog):
        for i in failed_whole:
            outcomes[i] = "DEADLOCK"
    return outcomes


def _outcome(body: dict[str, Any]) -> str:
    """``OK``, the refusal's error code, or the whole answer when it is neither (a
    top-level error such as ``INTERNAL_SERVER_ERROR``, or several codes)."""
    if "errors" in body or not body.get("data"):
        return f"top-level error: {body}"
    payload = next(iter(body["data"].values()))
    if payload is None:
        return f"no payload: {body}"
    codes = {error["code"] for error in payload["errors"]}
    if not codes:
        return "OK"
    return codes.pop() if len(codes) == 1 else f"several codes: {body}"


def _failed_whole(body: dict[str, Any]) -> bool:
    """The mutation itself raised: no data, one internal error at the mutation's field."""
    errors = body.get("errors") or []
    return (
        body.get("data") is None
        and len(errors) == 1
        and errors[0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        and len(errors[0]["path"]) == 1
    )


def _deadlocks_logged(caplog: pytest.LogCaptureFixture) -> int:
    """How many internal errors the app logged that were PostgreSQL deadlock aborts."""
    return sum(
        1
        for record in caplog.records
        if record.exc_info
        and isinstance(record.exc_info[1], DBAPIError)
        and getattr(record.exc_info[1].orig, "pgcode", None) == DEADLOCK_DETECTED
    )


def _no_deadlocks(deadlocks: int, rounds: int, race: str) -> None:
    """Locks are taken in one order (the graph's first, then rows), so no round may end in
    PostgreSQL's 'deadlock detected', which would reach the client as INTERNAL."""
    assert deadlocks == 0, f"{deadlocks} of {rounds} rounds of {race} deadlocked"


def _rounds() -> Iterator[int]:
    """Round numbers: ``ROUNDS`` of them, fewer when ``ROUND_SECONDS`` run out (a slow
    machine still ends the race in bounded time; the first round always runs)."""
    deadline = time.monotonic() + ROUND_SECONDS
    for round_ in range(ROUNDS):
        if round_ and time.monotonic() > deadline:
            return
        yield round_


async def _exact(app: Any, round_: int) -> None:
    """What must hold after every round of every race: the group graph has no cycle, no
    derived group has explicit members, and ``differences`` (what ``graphql-api
    check-membership`` runs) finds nothing: every derived group holds exactly what a
    computation from scratch gives, every ``member_count`` (``memberCount``) is the
    number of its rows."""
    links = await _links(app)
    assert _cycle(links) is None, (round_, "cycle", _cycle(links))
    async with app.state.sessions() as session:
        explicit = list(
            await session.execute(
                select(Group.name, Membership.contact_id)
                .join(Group, Group.id == Membership.group_id)
                .where(Group.kind != GroupKind.STATIC)
            )
        )
        assert explicit == [], (round_, "explicit members of derived groups", explicit)
        assert await differences(session) == [], round_


async def _links(app: Any) -> list[tuple[int, int]]:
    """Every edge of the group graph in the database: (group, group it depends on)."""
    async with app.state.engine.connect() as connection:
        rows = await connection.execute(text("SELECT group_id, member_group_id FROM group_links"))
        return [(row[0], row[1]) for row in rows]


def _cycle(links: Iterable[tuple[int, int]]) -> list[int] | None:
    """A cycle of the group graph, if there is one."""
    graph: dict[int, set[int]] = {}
    for group, member in links:
        graph.setdefault(group, set()).add(member)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        return list(error.args[1])
    return None


# 1. The advisory lock on the group graph ------------------------------------------------


async def _ring(client: GraphQLClient, prefix: str) -> tuple[str, str, str, str]:
    """Groups A, B, C, D with B built from C and D built from A: linking A to B and C to D
    would close the ring A -> B -> C -> D -> A. The two changes lock different rows (A and
    B, C and D), so no row lock orders them: only the lock on the graph does."""
    a, b, c, d = [await new_group_id(client, name=f"{prefix} {n}") for n in "ABCD"]
    await _updated(client, b, composedOfIds=[c])
    await _updated(client, d, composedOfIds=[a])
    return a, b, c, d


async def _updated(client: GraphQLClient, group_id: str, **values: Any) -> None:
    data = await client.data(UPDATE_GROUP, {"id": group_id, "input": values})
    assert data["updateGroup"]["errors"] == [], data


def _link(group_id: str, *composed_of: str) -> dict[str, Any]:
    return {"id": group_id, "input": {"composedOfIds": list(composed_of)}}


@ON_POSTGRESQL
async def test_graph_lock_makes_the_link_closing_a_ring_wait_then_refuses_it(
    race: _Race,
) -> None:
    """T1 links A -> B, T2 links C -> D: each alone is fine, together they close a ring.
    T2 waits on the advisory lock while T1 holds it, then sees T1's link: CYCLE."""
    a, b, c, d = await _ring(race.client, "Ring")
    first, second = await _paused(
        race,
        GroupUpdated,
        race.send(UPDATE_GROUP, _link(a, b)),
        race.send(UPDATE_GROUP, _link(c, d)),
        waits_on="advisory",
    )
    assert _outcome(first) == "OK"
    assert second == {
        "data": {
            "updateGroup": {
                "group": None,
                "errors": [
                    {
                        "field": ["input", "composedOfIds"],
                        "code": "CYCLE",
                        "message": "This would make a group contain itself: "
                        "Ring C -> Ring D -> Ring A -> Ring B -> Ring C.",
                    }
                ],
            }
        }
    }
    links = await _links(race.app)
    assert len(links) == 3 and _cycle(links) is None


@ON_POSTGRESQL
async def test_graph_refuses_a_direct_cycle_closed_by_two_requests(race: _Race) -> None:
    """T1 links A -> B, T2 links B -> A. T2 waits on the graph's lock, which every change
    of what groups are built from takes before any row, then sees T1's link: CYCLE."""
    a = await new_group_id(race.client, name="Noord")
    b = await new_group_id(race.client, name="Zuid")
    bodies = await _paused(
        race,
        GroupUpdated,
        race.send(UPDATE_GROUP, _link(a, b)),
        race.send(UPDATE_GROUP, _link(b, a)),
        waits_on="advisory",
    )
    assert [_outcome(body) for body in bodies] == ["OK", "CYCLE"]
    links = await _links(race.app)
    assert len(links) == 1 and _cycle(links) is None


async def test_ring_races_at_once_end_in_one_link_and_a_cycle_refusal(race: _Race) -> None:
    rounds = 0
    for round_ in _rounds():
        a, b, c, d = await _ring(race.client, f"Ring {round_}")
        outcomes = await _at_once(
            race, race.send(UPDATE_GROUP, _link(a, b)), race.send(UPDATE_GROUP, _link(c, d))
        )
        assert sorted(outcomes) == ["CYCLE", "OK"], (round_, outcomes)
        await _exact(race.app, round_)
        rounds += 1
    assert len(await _links(race.app)) == 3 * rounds


async def test_direct_cycle_races_at_once_end_in_one_link_and_a_cycle_refusal(
    race: _Race,
) -> None:
    """updateGroup(A, [B]) against updateGroup(B, [A]): one succeeds, the other is CYCLE,
    every round (never INTERNAL, never a deadlock)."""
    rounds = 0
    for round_ in _rounds():
        a = await new_group_id(race.client, name=f"Noord {round_}")
        b = await new_group_id(race.client, name=f"Zuid {round_}")
        outcomes = await _at_once(
            race, race.send(UPDATE_GROUP, _link(a, b)), race.send(UPDATE_GROUP, _link(b, a))
        )
        assert sorted(outcomes) == ["CYCLE", "OK"], (round_, outcomes)
        await _exact(race.app, round_)
        rounds += 1
    assert len(await _links(race.app)) == rounds


async def test_chain_races_at_once_both_succeed(race: _Race) -> None:
    """updateGroup(A, [B]) against updateGroup(B, [C]): both are legal, so both succeed,
    every round: A -> B -> C."""
    rounds = 0
    for round_ in _rounds():
        a, b, c = [await new_group_id(race.client, name=f"Keten {round_} {n}") for n in "ABC"]
        outcomes = await _at_once(
            race, race.send(UPDATE_GROUP, _link(a, b)), race.send(UPDATE_GROUP, _link(b, c))
        )
        assert outcomes == ["OK", "OK"], (round_, outcomes)
        await _exact(race.app, round_)
        rounds += 1
    assert len(await _links(race.app)) == 2 * rounds


async def test_adding_members_racing_a_conversion_to_composite_keeps_composites_derived(
    race: _Race,
) -> None:
    """addGroupMembers(G, [C]) against updateGroup(G, composedOfIds: [E]), G static and
    empty: either the add wins and the conversion is refused (HAS_MEMBERS: G's explicit
    members would silently stop counting), or the conversion wins and the add is refused
    (NOT_STATIC). Never both: a composite keeps no explicit members."""
    for round_ in _rounds():
        (contact,) = await new_contact_ids(race.client, f"Lid {round_}")
        part = await new_static_group_id(race.client, f"Deel {round_}", [contact])
        group = await new_group_id(race.client, name=f"Wordt samengesteld {round_}")
        outcomes = await _at_once(
            race,
            race.send(ADD_MEMBERS, _add(group, contact)),
            race.send(UPDATE_GROUP, _link(group, part)),
        )
        assert outcomes in (["OK", "HAS_MEMBERS"], ["NOT_STATIC", "OK"]), (round_, outcomes)
        await _exact(race.app, round_)


async def test_membership_churn_at_once_keeps_member_counts_exact(race: _Race) -> None:
    """Four requests at once on one static group S read by a composite (S and a dynamic
    group) and a composite excluding S: two add the same contacts, one removes some of
    them, one moves a contact into the dynamic group. ``memberCount`` of every group, as
    the API answers it, equals its real number of members after every round."""
    client = race.client
    move = (
        "mutation($id: ID!, $city: String) { updateContact(id: $id, input: {city: $city}) "
        "{ errors { code } } }"
    )
    for round_ in _rounds():
        people = await new_contact_ids(client, *[f"Churn {round_} {i}" for i in range(4)])
        static = await new_static_group_id(client, f"Kern {round_}", people[:1])
        city = {"condition": {"field": "city", "op": "EQ", "value": f"Stad {round_}"}}
        dynamic = await new_group_id(client, name=f"Stad {round_}", filter=city)
        groups = [
            static,
            dynamic,
            await new_group_id(client, name=f"Samen {round_}", composedOfIds=[static, dynamic]),
            await new_group_id(
                client, name=f"Rest {round_}", composedOfIds=[dynamic], excludedGroupIds=[static]
            ),
        ]
        bodies = await asyncio.wait_for(
            asyncio.gather(
                client.execute(ADD_MEMBERS, {"groupId": static, "contactIds": people[1:3]}),
                client.execute(ADD_MEMBERS, {"groupId": static, "contactIds": people[:3]}),
                client.execute(REMOVE_MEMBERS, {"groupId": static, "contactIds": people[::2]}),
                client.execute(move, {"id": people[2], "city": f"Stad {round_}"}),
            ),
            TIMEOUT,
        )
        outcomes = [_outcome(body) for body in bodies]
        assert set(outcomes) <= {"OK", "CONFLICT"}, (round_, outcomes)
        await _exact(race.app, round_)
        for group in groups:
            answered = (await client.data(COUNTED, {"id": group}))["group"]
            assert answered["memberCount"] == answered["members"]["totalCount"], (round_, answered)


# 2. FOR UPDATE on the contacts in the role rules ----------------------------------------


async def _role_groups(client: GraphQLClient, prefix: str) -> tuple[str, str]:
    coaches = await new_group_id(client, name=f"{prefix} coaches", neighbourhoodRole="coach")
    leaders = await new_group_id(
        client, name=f"{prefix} projectleiders", neighbourhoodRole="projectleider"
    )
    return coaches, leaders


def _add(group_id: str, contact_id: str) -> dict[str, Any]:
    return {"groupId": group_id, "contactIds": [contact_id]}


async def _roles(client: GraphQLClient, contact_id: str) -> dict[str, bool]:
    return (await client.data(ROLES, {"id": contact_id}))["contact"]


@ON_POSTGRESQL
async def test_contact_lock_makes_a_second_role_wait_then_refuses_it(race: _Race) -> None:
    """T1 makes C a coach, T2 a project leader. T2 waits on C's row, locked FOR UPDATE by
    T1's role check, then sees T1's membership: ROLE_CONFLICT. C holds one role."""
    coaches, leaders = await _role_groups(race.client, "Wijk")
    (contact,) = await new_contact_ids(race.client, "Jansen")
    first, second = await _paused(
        race,
        MembersAdded,
        race.send(ADD_MEMBERS, _add(coaches, contact)),
        race.send(ADD_MEMBERS, _add(leaders, contact)),
        waits_on="transactionid",
    )
    assert _outcome(first) == "OK"
    assert second["data"]["addGroupMembers"]["changedCount"] == 0
    assert second["data"]["addGroupMembers"]["errors"] == [
        {
            "field": ["contactIds", "0"],
            "code": "ROLE_CONFLICT",
            "message": "Jansen already holds coach through 'Wijk coaches'; a contact holds "
            "one role, so cannot also become 'Is project leader'.",
        }
    ]
    assert await _roles(race.client, contact) == {"isCoach": True, "isProjectLeader": False}


async def test_role_races_at_once_end_in_exactly_one_role(race: _Race) -> None:
    deadlocks = rounds = 0
    for round_ in _rounds():
        coaches, leaders = await _role_groups(race.client, f"Wijk {round_}")
        (contact,) = await new_contact_ids(race.client, f"Jansen {round_}")
        outcomes = await _at_once(
            race,
            race.send(ADD_MEMBERS, _add(coaches, contact)),
            race.send(ADD_MEMBERS, _add(leaders, contact)),
        )
        assert sorted(outcomes) in (["OK", "ROLE_CONFLICT"], ["DEADLOCK", "OK"]), (
            round_,
            outcomes,
        )
        deadlocks += outcomes.count("DEADLOCK")
        roles = await _roles(race.client, contact)
        assert sorted(roles.values()) == [False, True], (round_, roles)
        await _exact(race.app, round_)
        rounds += 1
    _no_deadlocks(deadlocks, rounds, "two addGroupMembers of one contact to groups of two roles")


# 3. The unique name: IntegrityError -> CONFLICT -----------------------------------------


@ON_POSTGRESQL
async def test_same_name_past_the_check_gives_one_group_and_a_conflict(race: _Race) -> None:
    """T2 checks the name while T1's group is uncommitted, so finds it free; its insert
    then waits on the unique index for T1, and fails when T1 commits: CONFLICT."""
    create = race.send(CREATE_GROUP, {"input": {"name": "Buurtteam Oost"}})
    first, second = await _paused(race, GroupCreated, create, create, waits_on="transactionid")
    assert _outcome(first) == "OK"
    assert second == {
        "data": {
            "createGroup": {
                "group": None,
                "errors": [{"field": None, "code": "CONFLICT", "message": CONFLICT_MESSAGE}],
            }
        }
    }
    assert await race.client.data(GROUP_COUNT) == {"groups": {"totalCount": 1}}


async def test_same_name_at_once_gives_one_group_and_a_refusal(race: _Race) -> None:
    rounds = 0
    for round_ in _rounds():
        create = race.send(CREATE_GROUP, {"input": {"name": f"Buurtteam {round_}"}})
        outcomes = await _at_once(race, create, create)
        assert sorted(outcomes) in (["CONFLICT", "OK"], ["NAME_TAKEN", "OK"]), (round_, outcomes)
        rounds += 1
    assert await race.client.data(GROUP_COUNT) == {"groups": {"totalCount": rounds}}


async def test_concurrent_writers_leave_derived_membership_exact(race: _Race) -> None:
    """Writers side by side for a bounded time (contact edits, static adds and removes,
    definition changes), then nothing differs from a computation from scratch."""
    client = race.client
    people = await new_contact_ids(client, *[f"P{i}" for i in range(8)])
    statics = [await new_group_id(client, name=f"S{i}") for i in range(3)]
    city = {"condition": {"field": "city", "op": "EQ", "value": "Zwolle"}}
    dynamic = await new_group_id(client, name="Zwolle", filter=city)
    both = await new_group_id(
        client, name="Beide", composedOfIds=[statics[0], dynamic], compositionMode="ALL"
    )
    await new_group_id(
        client, name="Behalve", composedOfIds=[both, statics[1]], excludedGroupIds=[statics[2]]
    )
    move = (
        "mutation($c: ID!, $city: String) { updateContact(id: $c, input: {city: $city}) "
        "{ errors { code } } }"
    )
    remove = (
        "mutation($g: ID!, $c: [ID!]!) { removeGroupMembers(groupId: $g, contactIds: $c) "
        "{ errors { code } } }"
    )
    deadline = asyncio.get_running_loop().time() + 4.0

    async def writer(number: int) -> int:
        done = 0
        while asyncio.get_running_loop().time() < deadline:
            person = people[(number * 3 + done) % len(people)]
            group = statics[(number + done) % len(statics)]
            step = (number + done) % 4
            if step == 0:
                body = await client.execute(
                    move, {"c": person, "city": "Zwolle" if done % 2 else "Ede"}
                )
            elif step == 1:
                body = await client.execute(ADD_MEMBERS, {"groupId": group, "contactIds": [person]})
            elif step == 2:
                body = await client.execute(remove, {"g": group, "c": [person]})
            else:
                parts = [statics[0], dynamic] if done % 2 else [statics[1], dynamic]
                body = await client.execute(
                    UPDATE_GROUP, {"id": both, "input": {"composedOfIds": parts}}
                )
            assert "errors" not in body, body
            [payload] = body["data"].values()
            assert payload["errors"] == [], payload
            done += 1
        return done

    counts = await asyncio.gather(*(writer(n) for n in range(4)))
    assert sum(counts) > 20, counts
    await _exact(race.app, 0)


# 4. A deadlock all the same: tried again, then CONFLICT -----------------------------------


async def _forced_deadlock(app: Any, client: GraphQLClient) -> tuple[dict[str, Any], int]:
    """updateGroup(A, [B]) deadlocked on purpose: a connection of the test locks A's row;
    the request takes the graph's lock and waits for A's row; the test's connection then
    asks for the graph's lock. PostgreSQL aborts the request's transaction (its backend
    checks for deadlocks after the default second; the test's connection waits far longer
    before it would check, so a loaded machine cannot turn the order round) and the test's
    connection goes on. Once the request waits again, on its next attempt, the test's
    connection lets go. The answer, and the group's links after it."""
    a = await new_group_id(client, name="Noord")
    b = await new_group_id(client, name="Zuid")
    parsed = parse_global_id(a)
    assert parsed is not None
    async with app.state.engine.connect() as blocker:
        await blocker.execute(text("SET LOCAL deadlock_timeout = '60s'"))
        await blocker.execute(
            text("SELECT id FROM groups WHERE id = :id FOR UPDATE"), {"id": parsed[1]}
        )
        request = asyncio.create_task(client.execute(UPDATE_GROUP, _link(a, b)))
        await _lock_wait(app, request)
        await asyncio.wait_for(
            blocker.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": GRAPH_LOCK}),
            TIMEOUT,
        )
        await asyncio.sleep(STILL_WAITING)
        await blocker.rollback()
    body = await asyncio.wait_for(request, TIMEOUT)
    return body, len(await _links(app))


def _aborted(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.getMessage().startswith("transaction aborted by the database")
    ]


@ON_POSTGRESQL
async def test_a_deadlocked_mutation_is_run_again_and_succeeds(race: _Race) -> None:
    race.caplog.set_level(logging.INFO, logger="graphql_api")
    body, links = await _forced_deadlock(race.app, race.client)
    assert _outcome(body) == "OK", body
    assert links == 1
    assert _aborted(race.caplog) == [
        f"transaction aborted by the database (SQLSTATE {DEADLOCK_DETECTED}), attempt 1 of 3"
    ]


@ON_POSTGRESQL
async def test_a_mutation_deadlocked_on_every_attempt_is_a_conflict(
    race: _Race, app_factory: Callable[..., Any]
) -> None:
    app = app_factory(transaction_attempts=1)
    _, token = await make_user(app, "Agnes", "agnes@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        body, links = await _forced_deadlock(app, GraphQLClient(http, token))
    assert body == {
        "data": {
            "updateGroup": {
                "group": None,
                "errors": [{"field": None, "code": "CONFLICT", "message": CONFLICT_MESSAGE}],
            }
        }
    }
    assert links == 0, "nothing of the aborted attempt was kept"
