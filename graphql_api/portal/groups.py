"""What a contact sees of groups on the portal, and the only changes they may make.

Visible ("Zichtbaar op portaal"): ``showOnPortal``, not ``closed``, and today between
``startDate`` and ``endDate`` where set. Changeable ("Veranderen op portaal"): visible,
static, ``editableOnPortal``, and no neighbourhood role. Anything else is as if it did
not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.groups.membership_reads import groups_containing
from graphql_api.groups.membership_writes import add_members, remove_members
from graphql_api.groups.models import Group, GroupKind, MembershipSource
from graphql_api.kernel.access import Principal
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.portal.accounts import PortalSession


def visible_on(today: date) -> ColumnElement[bool]:
    return and_(
        Group.show_on_portal.is_(True),
        Group.closed.is_(False),
        or_(Group.start_date.is_(None), Group.start_date <= today),
        or_(Group.end_date.is_(None), Group.end_date >= today),
    )


def can_change(group: Group) -> bool:
    """Whether a contact may join or leave this visible group."""
    return (
        group.kind is GroupKind.STATIC
        and group.editable_on_portal
        and group.neighbourhood_role is None
    )


@dataclass(frozen=True)
class PortalGroup:
    """A visible group as one contact sees it."""

    group: Group
    is_member: bool
    can_change: bool


async def visible_groups(
    session: AsyncSession, portal: PortalSession, *, today: date, members_only: bool = False
) -> list[PortalGroup]:
    """Every group visible today with whether the contact is in it (derived groups
    included), by name; only those the contact is in with ``members_only``."""
    groups = list(
        await session.scalars(select(Group).where(visible_on(today)).order_by(Group.name_key))
    )
    held = await groups_containing(session, [g.id for g in groups], [portal.contact_id])
    return [
        PortalGroup(group, (group.id, portal.contact_id) in held, can_change(group))
        for group in groups
        if not members_only or (group.id, portal.contact_id) in held
    ]


async def _changeable(session: AsyncSession, group_id: int, today: date) -> Group:
    group = await session.scalar(select(Group).where(Group.id == group_id, visible_on(today)))
    if group is None:
        raise UserInputError.single(["group_id"], ErrorCode.NOT_FOUND, "No group with this id.")
    if group.neighbourhood_role is not None:
        raise UserInputError.single(
            ["group_id"], ErrorCode.ROLE_GROUP, "A group with a role is changed by staff only."
        )
    if group.kind is not GroupKind.STATIC:
        raise UserInputError.single(
            ["group_id"], ErrorCode.NOT_STATIC, "Its members follow from a rule, not a choice."
        )
    if not group.editable_on_portal:
        raise UserInputError.single(
            ["group_id"], ErrorCode.NOT_EDITABLE, "This group is not changed on the portal."
        )
    return group


def _as_contact(portal: PortalSession) -> Principal:
    # The portal's own rules above decide; the membership service records the change
    # with source PORTAL for the contact themselves, with no staff user as actor.
    return Principal(
        name=f"portal contact {portal.contact_id}", permissions=frozenset({"members.manage"})
    )


async def join_group(
    session: AsyncSession, portal: PortalSession, group_id: int, *, today: date
) -> PortalGroup:
    """Add the contact to a group they may change; already a member changes nothing."""
    group = await _changeable(session, group_id, today)
    source = MembershipSource.PORTAL
    await add_members(session, _as_contact(portal), group.id, [portal.contact_id], source)
    return PortalGroup(group, is_member=True, can_change=True)


async def leave_group(
    session: AsyncSession, portal: PortalSession, group_id: int, *, today: date
) -> PortalGroup:
    """Take the contact out of a group they may change; not a member changes nothing."""
    group = await _changeable(session, group_id, today)
    source = MembershipSource.PORTAL
    await remove_members(session, _as_contact(portal), group.id, [portal.contact_id], source)
    return PortalGroup(group, is_member=False, can_change=True)
