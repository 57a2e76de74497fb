"""Batch loaders of the group fields: one statement per field per request, whatever the
number of groups asked for."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.groups import membership_reads
from graphql_api.groups.models import Group, GroupLink, LinkRole
from graphql_api.groups.structure import groups_using


async def load_member_counts(session: AsyncSession, group_ids: Sequence[int]) -> list[int]:
    counts = await membership_reads.member_counts(session, group_ids)
    return [counts[group_id] for group_id in group_ids]


async def load_has_member(session: AsyncSession, pairs: Sequence[tuple[int, int]]) -> list[bool]:
    members = await membership_reads.member_pairs(session, pairs)
    return [pair in members for pair in pairs]


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
    found = await groups_using(session, group_ids)
    return [found[group_id] for group_id in group_ids]
