"""Batch loaders for groups and memberships: one statement per field per request."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.groups import membership
from graphql_api.groups.models import Group, Membership


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
