"""Batch loaders for groups and memberships: one statement per field per request."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.groups import membership, service
from graphql_api.groups.models import Group, GroupLink, LinkRole, Membership


async def load_member_counts(session: AsyncSession, group_ids: Sequence[int]) -> list[int]:
    counts = await membership.member_counts(session, group_ids)
    return [counts[group_id] for group_id in group_ids]


async def load_has_member(session: AsyncSession, pairs: Sequence[tuple[int, int]]) -> list[bool]:
    members = await membership.member_pairs(session, pairs)
    return [pair in members for pair in pairs]


async def load_memberships(
    session: AsyncSession, contact_ids: Sequence[int]
) -> list[list[Membership]]:
    found = await membership.memberships_of_contacts(session, contact_ids)
    return [found[contact_id] for contact_id in contact_ids]


async def load_visible_memberships(
    session: AsyncSession, contact_ids: Sequence[int]
) -> list[list[Membership]]:
    found = await membership.memberships_of_contacts(
        session, contact_ids, show_on_contact_only=True
    )
    return [found[contact_id] for contact_id in contact_ids]


async def load_groups_of_contacts(
    session: AsyncSession, contact_ids: Sequence[int]
) -> list[list[Group]]:
    found = await membership.groups_of_contacts(session, contact_ids)
    return [found[contact_id] for contact_id in contact_ids]


async def load_links(
    session: AsyncSession, group_ids: Sequence[int]
) -> list[dict[LinkRole, list[Group]]]:
    """Each group's included and excluded groups, in the order they were given."""
    rows = await session.execute(
        select(GroupLink.group_id, GroupLink.role, Group)
        .join(Group, Group.id == GroupLink.member_group_id)
        .where(GroupLink.group_id.in_(group_ids), GroupLink.role != LinkRole.FILTER)
        .order_by(GroupLink.position)
    )
    found: dict[int, dict[LinkRole, list[Group]]] = {
        group_id: {LinkRole.INCLUDE: [], LinkRole.EXCLUDE: []} for group_id in group_ids
    }
    for group_id, role, group in rows:
        found[group_id][role].append(group)
    return [found[group_id] for group_id in group_ids]


async def load_used_by(session: AsyncSession, group_ids: Sequence[int]) -> list[list[Group]]:
    found = await service.groups_using(session, group_ids)
    return [found[group_id] for group_id in group_ids]
