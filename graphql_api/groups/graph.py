"""The group graph: which groups a group is built from, found with one recursive CTE.

Membership of dynamic and composite groups is compiled from this graph into SQL
(``groups.membership``); the graph itself is only group ids and definitions, never members.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.groups.filters import referenced_groups
from graphql_api.groups.models import CompositionMode, Group, GroupKind, GroupLink, LinkRole


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


@dataclass
class GroupGraph:
    """Every group reachable from some roots, by id."""

    nodes: dict[int, GroupNode]

    def order_from_leaves(self) -> list[int]:
        """Group ids with each group after every group it depends on."""
        done: set[int] = set()
        order: list[int] = []

        def visit(group_id: int) -> None:
            # Depth is bounded by the graph, which writes keep acyclic.
            if group_id in done:
                return
            done.add(group_id)
            node = self.nodes[group_id]
            for dependency in self.dependencies(node):
                visit(dependency)
            order.append(group_id)

        for group_id in sorted(self.nodes):
            visit(group_id)
        return order

    def dependencies(self, node: GroupNode) -> list[int]:
        return [*node.included, *node.excluded, *sorted(referenced_groups(node.filter))]


def reachable_ids(roots: Iterable[int]) -> Any:
    """A recursive CTE of the roots and every group they depend on (UNION: each once)."""
    start = select(Group.id.label("id")).where(Group.id.in_(list(roots)))
    reach = start.cte("reach", recursive=True)
    step = select(GroupLink.member_group_id).join(reach, GroupLink.group_id == reach.c.id)
    return reach.union(step)


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
    LEFT JOIN group_links ON group_links.group_id = groups.id AND group_links.role <> 'FILTER'
    ORDER BY groups.id, group_links.position
    """
).bindparams(bindparam("roots", expanding=True))
"""The definitions of some groups and of all they depend on (a recursive CTE, UNION)."""


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
        if role == LinkRole.INCLUDE:
            node.included.append(member_id)
        elif role == LinkRole.EXCLUDE:
            node.excluded.append(member_id)
    return GroupGraph(nodes)


async def find_cycle(
    session: AsyncSession, group_id: int, targets: Iterable[int]
) -> list[str] | None:
    """Names on a path ``group -> target -> ... -> group``, if linking would close a cycle."""
    targets = list(targets)
    if group_id in targets:
        name = await session.scalar(select(Group.name).where(Group.id == group_id))
        return [name or "?", name or "?"]
    reach = reachable_ids(targets)
    rows = await session.execute(
        select(GroupLink.group_id, GroupLink.member_group_id).join(
            reach, reach.c.id == GroupLink.group_id
        )
    )
    edges: dict[int, list[int]] = defaultdict(list)
    for source, target in rows:
        edges[source].append(target)
    edges[group_id] = targets
    previous: dict[int, int] = {}
    queue = deque([group_id])
    while queue:
        current = queue.popleft()
        for following in edges.get(current, []):
            if following == group_id:
                path = [current]
                while path[-1] != group_id:
                    path.append(previous[path[-1]])
                ids = [group_id, *reversed(path[:-1]), group_id]
                names = dict(
                    (
                        await session.execute(select(Group.id, Group.name).where(Group.id.in_(ids)))
                    ).all()
                )
                return [names[i] for i in ids]
            if following not in previous and following != group_id:
                previous[following] = current
                queue.append(following)
    return None
