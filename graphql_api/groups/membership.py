"""Who is in which group, answered with set-based SQL for many groups or contacts at once."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.contacts.service import contact_search
from graphql_api.groups.models import Group, Membership


def member_ids(group_id: int) -> Select[tuple[int]]:
    """The ids of a group's members, as a subquery to select contacts with."""
    return select(Membership.contact_id).where(Membership.group_id == group_id)


def members_query(group_id: int, search: str | None) -> Select[tuple[Contact]]:
    query = select(Contact).where(Contact.id.in_(member_ids(group_id)))
    return query.where(contact_search(search)) if search else query


async def member_counts(session: AsyncSession, group_ids: Sequence[int]) -> dict[int, int]:
    """Number of members of each group, in one aggregate statement."""
    rows = await session.execute(
        select(Membership.group_id, func.count())
        .where(Membership.group_id.in_(group_ids))
        .group_by(Membership.group_id)
    )
    counts = {group_id: count for group_id, count in rows}
    return {group_id: counts.get(group_id, 0) for group_id in group_ids}


async def member_pairs(
    session: AsyncSession, pairs: Sequence[tuple[int, int]]
) -> set[tuple[int, int]]:
    """Which of the (group id, contact id) pairs are memberships."""
    if not pairs:
        return set()
    rows = await session.execute(
        select(Membership.group_id, Membership.contact_id).where(
            tuple_(Membership.group_id, Membership.contact_id).in_(list(set(pairs)))
        )
    )
    return {(group_id, contact_id) for group_id, contact_id in rows}


async def memberships_of_contacts(
    session: AsyncSession, contact_ids: Sequence[int], *, show_on_contact_only: bool = False
) -> dict[int, list[Membership]]:
    """Each contact's explicit links, oldest first."""
    query = (
        select(Membership)
        .where(Membership.contact_id.in_(contact_ids))
        .order_by(Membership.member_since, Membership.group_id)
    )
    if show_on_contact_only:
        query = query.join(Group, Group.id == Membership.group_id).where(
            Group.show_on_contact.is_(True)
        )
    found: dict[int, list[Membership]] = defaultdict(list)
    for membership in await session.scalars(query):
        found[membership.contact_id].append(membership)
    return {contact_id: found[contact_id] for contact_id in contact_ids}


async def groups_of_contacts(
    session: AsyncSession, contact_ids: Sequence[int]
) -> dict[int, list[Group]]:
    """Every group each contact is in, by name."""
    rows = await session.execute(
        select(Membership.contact_id, Group)
        .join(Group, Group.id == Membership.group_id)
        .where(Membership.contact_id.in_(contact_ids))
        .order_by(Group.name_key)
    )
    found: dict[int, list[Group]] = defaultdict(list)
    for contact_id, group in rows:
        found[contact_id].append(group)
    return {contact_id: found[contact_id] for contact_id in contact_ids}


def group_ids_of_contact(contact_id: int) -> Select[tuple[int]]:
    """The ids of the groups a contact is in, as a subquery to select groups with."""
    return select(Membership.group_id).where(Membership.contact_id == contact_id)
