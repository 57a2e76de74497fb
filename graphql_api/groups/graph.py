"""The group graph: which groups a group is built from, found with one recursive CTE.

Membership of dynamic and composite groups is compiled from this graph into SQL
(``groups.membership``); the graph itself is only group ids and definitions, never members.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.groups.models import CompositionMode, GroupKind, LinkRole


@dataclass
class GroupNode:
    """What membership of one group is defined by."""

    id: int
    name: str
    kind: GroupKind
    mode: CompositionMode
    filter: dict[str, Any] | None
    included: list[int] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    filtered_on: list[int] = field(default_factory=list)
    """Groups the filter's ``memberOf`` conditions name."""

    @property
    def dependencies(self) -> list[int]:
        return [*self.included, *self.excluded, *self.filtered_on]


@dataclass
class GroupGraph:
    """Every group reachable from some roots, by id."""

    nodes: dict[int, GroupNode]

    def order_from_leaves(self) -> list[int]:
        """Group ids with each group after every group it depends on."""
        sorter = TopologicalSorter({i: node.dependencies for i, node in self.nodes.items()})
        return list(sorter.static_order())

    def path(self, start: int, goal: int) -> list[int] | None:
        """The shortest chain of dependencies from ``start`` to ``goal``, both included."""
        previous: dict[int, int] = {start: start}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            if current == goal:
                chain = [goal]
                while chain[-1] != start:
                    chain.append(previous[chain[-1]])
                return chain[::-1]
            for following in self.nodes[current].dependencies:
                if following not in previous and following in self.nodes:
                    previous[following] = current
                    queue.append(following)
        return None


GRAPH = text(
    """
    WITH RECURSIVE reach(id) AS (
        SELECT id FROM groups WHERE id IN :roots
        UNION
        SELECT group_links.member_group_id
        FROM group_links JOIN reach ON group_links.group_id = reach.id
    )
    SELECT groups.id, groups.name, groups.kind, groups.composition_mode, groups.filter,
           group_links.member_group_id, group_links.role
    FROM groups
    JOIN reach ON reach.id = groups.id
    LEFT JOIN group_links ON group_links.group_id = groups.id
    ORDER BY groups.id, group_links.position
    """
).bindparams(bindparam("roots", expanding=True))
"""The definitions of some groups and of all they depend on (a recursive CTE, UNION)."""

LINK_LISTS = {
    LinkRole.INCLUDE: "included",
    LinkRole.EXCLUDE: "excluded",
    LinkRole.FILTER: "filtered_on",
}


async def load_graph(session: AsyncSession, roots: Iterable[int]) -> GroupGraph:
    """The definitions of the roots and all they depend on, in one statement."""
    roots = list(roots)
    nodes: dict[int, GroupNode] = {}
    if not roots:
        return GroupGraph(nodes)
    rows = await session.execute(GRAPH, {"roots": roots})
    for group_id, name, kind, mode, tree, member_id, role in rows:
        node = nodes.get(group_id)
        if node is None:
            if isinstance(tree, str):
                tree = json.loads(tree)
            node = nodes[group_id] = GroupNode(
                group_id, name, GroupKind(kind), CompositionMode(mode), tree
            )
        if role is not None:
            getattr(node, LINK_LISTS[LinkRole(role)]).append(member_id)
    return GroupGraph(nodes)


GRAPH_LOCK = 7_245_110_921
"""PostgreSQL advisory lock key held while the group graph changes."""


async def lock_graph(session: AsyncSession, *, shared: bool = False) -> None:
    """Serialise changes to the group graph, so two changes cannot close a cycle together;
    ``shared`` for changes that only touch some contacts' memberships, which may run side
    by side but not while a definition changes (``groups.derived``).

    Taken before any row lock, on PostgreSQL. SQLite needs nothing here: a writing
    transaction holds the database's write lock from its start (``BEGIN IMMEDIATE``;
    ``kernel.writing``, which ``run_mutation`` uses), so every writer of every process
    runs alone, and what it read stays as read until it commits. A transaction on SQLite
    not declared writing would read before it waits, and could close a cycle.
    """
    # Not mutated: PostgreSQL only, and the mutation run is SQLite only (docs/testing.md).
    # pragma: no mutate block
    if session.bind.dialect.name == "postgresql":
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        await session.execute(text(f"SELECT {function}(:key)"), {"key": GRAPH_LOCK})


async def find_cycle(
    session: AsyncSession, group_id: int, name: str, targets: Iterable[int]
) -> tuple[int, list[str]] | None:
    """If linking ``group`` to ``targets`` would close a cycle: the target it goes through
    and the names on the path ``group -> target -> ... -> group``."""
    targets = list(targets)
    if group_id in targets:
        return group_id, [name, name]
    graph = await load_graph(session, targets)
    if group_id not in graph.nodes:
        return None
    for target in targets:
        chain = graph.path(target, group_id)
        if chain:
            return target, [name, *(graph.nodes[i].name for i in chain[:-1]), name]
    return None
