"""The floor: the same answers written by hand as plain SQL, independent of the app's code.

Set expressions are built the way a person would write them for these datasets: nested
subqueries with UNION / INTERSECT / EXCEPT, ``group_id IN (...)`` for a union of static
groups, and the dynamic filters of ``seed --size`` spelled out. Only the shapes the seed
produces are supported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass
class Definition:
    kind: str
    mode: str
    filter: dict[str, Any] | None
    included: list[int] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    filter_groups: list[int] = field(default_factory=list)


async def load_definitions(connection: AsyncConnection) -> dict[int, Definition]:
    import json

    groups: dict[int, Definition] = {}
    for group_id, kind, mode, tree in await connection.execute(
        text("SELECT id, kind, composition_mode, filter FROM groups")
    ):
        if isinstance(tree, str):
            tree = json.loads(tree)
        groups[group_id] = Definition(kind, mode, tree)
    for group_id, member_id, role in await connection.execute(
        text("SELECT group_id, member_group_id, role FROM group_links ORDER BY position")
    ):
        target = {"INCLUDE": "included", "EXCLUDE": "excluded", "FILTER": "filter_groups"}[role]
        getattr(groups[group_id], target).append(member_id)
    return groups


class Floor:
    """Writes the SQL of a group's member set, optionally for one contact only."""

    def __init__(self, groups: dict[int, Definition]) -> None:
        self.groups = groups
        self.counter = 0

    def alias(self) -> str:
        self.counter += 1
        return f"s{self.counter}"

    def members(self, group_id: int, contact: int | None = None) -> str:
        group = self.groups[group_id]
        only = f" AND contact_id = {contact}" if contact is not None else ""
        if group.kind == "STATIC":
            return f"SELECT contact_id FROM memberships WHERE group_id = {group_id}{only}"
        if group.kind == "DYNAMIC":
            only_contact = f" AND id = {contact}" if contact is not None else ""
            return (
                f"SELECT id AS contact_id FROM contacts WHERE "
                f"{self.condition(group.filter or {}, contact)}{only_contact}"
            )
        statics = [g for g in group.included if self.groups[g].kind == "STATIC"]
        parts = [self.wrap(self.members(g, contact)) for g in group.included if g not in statics]
        if statics and group.mode == "ANY":
            ids = ", ".join(map(str, statics))
            parts.insert(
                0, f"SELECT DISTINCT contact_id FROM memberships WHERE group_id IN ({ids}){only}"
            )
        else:
            parts = [self.wrap(self.members(g, contact)) for g in statics] + parts
        operator = " INTERSECT " if group.mode == "ALL" else " UNION "
        combined = operator.join(parts)
        if group.excluded:
            excluded = " UNION ".join(self.wrap(self.members(g, contact)) for g in group.excluded)
            combined = f"{self.wrap(combined)} EXCEPT {self.wrap(excluded)}"
        return combined

    def wrap(self, query: str) -> str:
        return f"SELECT contact_id FROM ({query}) AS {self.alias()}"

    def condition(self, tree: dict[str, Any], contact: int | None) -> str:
        if "all" in tree:
            return "(" + " AND ".join(self.condition(t, contact) for t in tree["all"]) + ")"
        if "any" in tree:
            return "(" + " OR ".join(self.condition(t, contact) for t in tree["any"]) + ")"
        if "not" in tree:
            return f"NOT {self.condition(tree['not'], contact)}"
        condition = tree["condition"]
        field, op, value = condition["field"], condition["op"], condition.get("value")
        if field == "memberOf" and op == "EQ":
            return f"id IN ({self.members(int(value), contact)})"
        if field == "postalCode" and op == "STARTS_WITH":
            return f"lower(coalesce(postal_code, '')) LIKE '{value.lower()}%'"
        if field == "email" and op == "IS_EMPTY":
            return "coalesce(email, '') = ''"
        raise NotImplementedError(condition)
