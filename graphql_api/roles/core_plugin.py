"""The rules of neighbourhood roles, as a built-in plugin (``core.roles``).

Roles come from role plugins; these rules hold for all of them:

- only a static group gives a role: its explicit members ("contactkoppelingen") hold it;
- a contact holds at most one role: linking it to a group with another role is refused
  (ROLE_CONFLICT), for every contact of a bulk add at once;
- a group's role cannot change while it has members (ROLE_IN_USE);
- dynamic filters can test ``neighbourhoodRole``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.groups.changes import Change, GroupCreated, GroupUpdated, MembersAdded
from graphql_api.groups.filters import FieldType, FilterField, FilterOp
from graphql_api.groups.models import Group, GroupKind, Membership
from graphql_api.groups.rules import rules_of
from graphql_api.kernel.errors import ErrorCode, Problem
from graphql_api.kernel.hooks import hookimpl
from graphql_api.kernel.sql import SqlText
from graphql_api.roles.registry import RoleDefinition


@hookimpl
async def validate_change(session: AsyncSession, change: Change) -> list[Problem]:
    if isinstance(change, MembersAdded) and change.group.neighbourhood_role:
        return await _conflicts(session, change)
    if isinstance(change, GroupCreated | GroupUpdated):
        group = change.group if isinstance(change, GroupCreated) else change.after
        if group.neighbourhood_role and group.kind is not GroupKind.STATIC:
            return [
                _problem(
                    "neighbourhood_role", ErrorCode.INVALID, "Only a static group gives a role."
                )
            ]
    if isinstance(change, GroupUpdated) and (
        change.before.neighbourhood_role != change.after.neighbourhood_role
    ):
        has_members = await session.scalar(
            select(Membership.contact_id).where(Membership.group_id == change.after.id).limit(1)
        )
        if has_members is not None:
            return [
                _problem(
                    "neighbourhood_role",
                    ErrorCode.ROLE_IN_USE,
                    f"{change.after.name!r} has members, who hold its role; remove them first.",
                )
            ]
    return []


async def _conflicts(session: AsyncSession, change: MembersAdded) -> list[Problem]:
    """The added contacts who hold another role through another group."""
    role = change.group.neighbourhood_role
    # Lock the contacts: two concurrent adds of one contact to groups of different roles
    # would otherwise both see no conflict. NO KEY UPDATE, not UPDATE: both adds already
    # hold KEY SHARE on the contact (their membership's foreign key), which UPDATE would
    # wait for on each side, a deadlock. SQLite has one writer at a time anyway.
    locked = select(Contact).where(Contact.id.in_(change.contact_ids)).order_by(Contact.id)
    contacts = {c.id: c for c in await session.scalars(locked.with_for_update(key_share=True))}
    rows = await session.execute(
        select(Membership.contact_id, Group.neighbourhood_role, Group.name)
        .join(Group, Group.id == Membership.group_id)
        .where(
            Membership.contact_id.in_(change.contact_ids),
            and_(Group.neighbourhood_role.is_not(None), Group.neighbourhood_role != role),
        )
        .order_by(Membership.contact_id, Group.name_key)
    )
    others: dict[int, list[str]] = defaultdict(list)
    for contact_id, other_role, group_name in rows:
        others[contact_id].append(f"{other_role} through {group_name!r}")
    labels = rules_of(session).roles
    wanted = labels[role].label("en") if role in labels else role
    return [
        Problem(
            ("contact_ids", str(contact_id)),
            ErrorCode.ROLE_CONFLICT,
            f"{contacts[contact_id].display_name} already holds {', '.join(held)}; a contact "
            f"holds one role, so cannot also become {wanted!r}.",
        )
        for contact_id, held in others.items()
    ]


def _problem(field: str, code: ErrorCode, message: str) -> Problem:
    return Problem((field,), code, message)


def _compile_role(op: FilterOp, values: list[str], sql: SqlText) -> str:
    keys = ", ".join(sql.bind(v) for v in values)
    holders = (
        "SELECT memberships.contact_id FROM memberships JOIN groups ON groups.id = "
        f"memberships.group_id WHERE groups.neighbourhood_role IN ({keys})"
    )
    return f"contacts.id {'NOT IN' if op is FilterOp.NEQ else 'IN'} ({holders})"


@hookimpl
def filter_fields(roles: Mapping[str, RoleDefinition]) -> list[FilterField]:
    labels = {"nl": "Rol in buurtaanpak", "en": "Neighbourhood role"}
    return [
        FilterField(
            "neighbourhoodRole", FieldType.CHOICE, tuple(roles), _compile_role, labels=labels
        )
    ]
