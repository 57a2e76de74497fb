"""The group graph (graphql_api.groups.graph): the order groups are computed in, the
shortest chain of dependencies, the graph as loaded from the database in one statement,
and the cycles a new link would close, with the names the refusal shows."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from graphql_api.groups.graph import GroupGraph, GroupNode, find_cycle, load_graph, lock_graph
from graphql_api.groups.lifecycle import create_group, update_group
from graphql_api.groups.models import CompositionMode, GroupKind
from graphql_api.kernel.access import SYSTEM
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError

STATIC, DYNAMIC, COMPOSITE = GroupKind.STATIC, GroupKind.DYNAMIC, GroupKind.COMPOSITE
ANY, ALL = CompositionMode.ANY, CompositionMode.ALL


def node(i: int, *included: int, excluded: tuple[int, ...] = (), on: tuple[int, ...] = ()):
    kind = COMPOSITE if included else DYNAMIC if on else STATIC
    return GroupNode(i, f"G{i}", kind, ANY, None, list(included), list(excluded), list(on))


def graph(*nodes: GroupNode) -> GroupGraph:
    return GroupGraph({n.id: n for n in nodes})


def test_dependencies_are_included_then_excluded_then_filtered_on_groups():
    assert node(1, 2, 3, excluded=(4,), on=(5, 6)).dependencies == [2, 3, 4, 5, 6]
    assert node(7).dependencies == []


def test_every_group_comes_after_the_groups_it_depends_on():
    g = graph(node(1, 2, 3, excluded=(4,)), node(2, 5), node(3), node(4, on=(5,)), node(5))
    order = g.order_from_leaves()
    assert sorted(order) == [1, 2, 3, 4, 5]
    for group_id, n in g.nodes.items():
        for dependency in n.dependencies:
            assert order.index(dependency) < order.index(group_id)


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail a block that runs longer than ``seconds`` (a search that never ends)."""

    def expire(*_: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_path_starts_and_ends_with_the_given_groups():
    g = graph(node(1, 2), node(2, 3), node(3, 4), node(4))
    with within(0.5):
        assert g.path(1, 1) == [1]
        assert g.path(1, 2) == [1, 2]
        assert g.path(1, 4) == [1, 2, 3, 4]
        assert g.path(2, 4) == [2, 3, 4]
        assert g.path(4, 1) is None, "dependencies point one way"
        assert g.path(3, 1) is None


def test_a_path_is_the_shortest_and_the_first_found_of_equal_length():
    # 1 -> 2 -> 5 -> 6, 1 -> 3 -> 6, 1 -> 4 -> 6: two of length two, one of three
    g = graph(node(1, 2, 3, 4), node(2, 5), node(3, 6), node(4, 6), node(5, 6), node(6))
    assert g.path(1, 6) == [1, 3, 6]
    # through every kind of link: excluded, then filtered on
    h = graph(node(1, 2, excluded=(3,)), node(2), node(3, on=(4,)), node(4))
    assert h.path(1, 4) == [1, 3, 4]


def test_a_path_does_not_follow_groups_outside_the_graph():
    g = graph(node(1, 9, 2), node(2, 3), node(3))
    assert g.path(1, 3) == [1, 2, 3]
    assert g.path(1, 9) is None


Sessions = async_sessionmaker[AsyncSession]


async def new_group(sessions: Sessions, name: str, **values: Any) -> int:
    async with sessions() as session, session.begin():
        return (await create_group(session, SYSTEM, {"name": name, **values})).id


def member_of(*group_ids: int) -> dict[str, Any]:
    values = [str(i) for i in group_ids]
    return {"condition": {"field": "memberOf", "op": "IN", "values": values}}


async def test_the_graph_holds_the_roots_and_all_they_depend_on(sessions: Sessions):
    a = await new_group(sessions, "A")
    b = await new_group(sessions, "B")
    c = await new_group(sessions, "C")
    d = await new_group(sessions, "D", filter=member_of(b, a))
    e = await new_group(
        sessions,
        "E",
        composed_of_ids=[d, c],
        excluded_group_ids=[b],
        composition_mode=ALL,
    )
    unrelated = await new_group(sessions, "Los")
    async with sessions() as session:
        loaded = await load_graph(session, iter([e]))
    assert sorted(loaded.nodes) == sorted([a, b, c, d, e])
    assert unrelated not in loaded.nodes
    root = loaded.nodes[e]
    assert (root.id, root.name, root.kind, root.mode, root.filter) == (e, "E", COMPOSITE, ALL, None)
    assert (root.included, root.excluded, root.filtered_on) == ([d, c], [b], [])
    dynamic = loaded.nodes[d]
    assert (dynamic.name, dynamic.kind, dynamic.mode) == ("D", DYNAMIC, ANY)
    assert dynamic.filter == member_of(b, a)
    assert (dynamic.included, dynamic.excluded, sorted(dynamic.filtered_on)) == ([], [], [a, b])
    leaf = loaded.nodes[a]
    assert (leaf.id, leaf.name, leaf.kind, leaf.filter, leaf.dependencies) == (
        a,
        "A",
        STATIC,
        None,
        [],
    )


async def test_several_roots_share_their_dependencies(sessions: Sessions):
    a = await new_group(sessions, "A")
    b = await new_group(sessions, "B", composed_of_ids=[a])
    c = await new_group(sessions, "C", composed_of_ids=[a])
    async with sessions() as session:
        loaded = await load_graph(session, [b, c, b])
    assert sorted(loaded.nodes) == sorted([a, b, c])
    assert loaded.nodes[b].included == loaded.nodes[c].included == [a]


async def test_no_roots_is_an_empty_graph_without_a_statement(
    sessions: Sessions, engine: AsyncEngine
):
    sent: list[str] = []

    def count(*args: Any) -> None:
        sent.append(args[2])

    async with sessions() as session:
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            assert (await load_graph(session, [])).nodes == {}
            await lock_graph(session)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
    if engine.dialect.name == "sqlite":
        assert sent == [], "no roots: nothing to read; SQLite: no lock to take"
    else:
        assert len(sent) == 1 and "pg_advisory_xact_lock" in sent[0]


async def test_find_cycle_names_the_path_back_to_the_group(sessions: Sessions):
    a = await new_group(sessions, "A")
    b = await new_group(sessions, "B", composed_of_ids=[a])
    c = await new_group(sessions, "C", composed_of_ids=[b])
    d = await new_group(sessions, "D", excluded_group_ids=[c], composed_of_ids=[b])
    other = await new_group(sessions, "Los")
    async with sessions() as session:
        assert await find_cycle(session, a, "A", [a]) == (a, ["A", "A"])
        assert await find_cycle(session, a, "A", iter([other, a])) == (a, ["A", "A"])
        assert await find_cycle(session, a, "A", [b]) == (b, ["A", "B", "A"])
        assert await find_cycle(session, a, "A", [other, d]) == (d, ["A", "D", "B", "A"])
        assert await find_cycle(session, a, "A", [c, d]) == (c, ["A", "C", "B", "A"])
        assert await find_cycle(session, a, "A", [other]) is None
        assert await find_cycle(session, d, "D", [a, b, c]) is None
        assert await find_cycle(session, other, "Los", []) is None


async def test_a_link_that_closes_a_cycle_is_refused_with_the_cycle(sessions: Sessions):
    a = await new_group(sessions, "A")
    b = await new_group(sessions, "B", composed_of_ids=[a])
    c = await new_group(sessions, "C", composed_of_ids=[b])

    async def refused(changes: dict[str, Any]) -> tuple[Problem, ...]:
        with pytest.raises(UserInputError) as error:
            async with sessions() as session, session.begin():
                await update_group(session, SYSTEM, a, changes)
        return error.value.problems

    cycle = "This would make a group contain itself: A -> C -> B -> A."
    assert await refused({"composed_of_ids": [c]}) == (
        Problem(("composed_of_ids",), ErrorCode.CYCLE, cycle),
    )
    static = await new_group(sessions, "S")
    assert await refused({"composed_of_ids": [static], "excluded_group_ids": [c]}) == (
        Problem(("excluded_group_ids",), ErrorCode.CYCLE, cycle),
    )
    assert await refused({"filter": member_of(b)}) == (
        Problem(
            ("filter",), ErrorCode.CYCLE, "This would make a group contain itself: A -> B -> A."
        ),
    )
    async with sessions() as session:
        assert (await load_graph(session, [a])).nodes[a].dependencies == []
