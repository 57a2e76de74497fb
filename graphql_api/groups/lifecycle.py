"""Creating, changing, deleting and converting groups.

Each function is the whole of one change inside the caller's transaction: the settings
(``groups.group_settings``), what the group is built from (``groups.structure``), and
the change reported to the application's rules (plugins, the outbox).

Locks are taken in one order, so two changes never wait on each other: the group graph's
lock first (a change of what groups are built from), then rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Integer, delete, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.groups.changes import (
    GroupCreated,
    GroupDeleted,
    GroupSnapshot,
    GroupUpdated,
)
from graphql_api.groups.derived import after_definition_changed
from graphql_api.groups.graph import lock_graph
from graphql_api.groups.group_settings import BOOLEAN_SETTINGS, apply_settings
from graphql_api.groups.membership_reads import members_query
from graphql_api.groups.models import (
    CompositionMode,
    DerivedMembership,
    Group,
    GroupKind,
    GroupLink,
    Membership,
    MembershipAction,
    MembershipEvent,
    MembershipSource,
)
from graphql_api.groups.rules import rules_of
from graphql_api.groups.structure import STRUCTURE, apply_structure, groups_using
from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.db import UtcDateTime, utcnow
from graphql_api.kernel.errors import ErrorCode, UserInputError


async def locked_group(session: AsyncSession, group_id: int) -> Group:
    """The group, locked against concurrent changes until the transaction ends."""
    group = await session.get(Group, group_id, with_for_update=True)
    if group is None:
        raise UserInputError.single(["group_id"], ErrorCode.NOT_FOUND, "No group with this id.")
    return group


async def _lock_graph_for(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Take the graph's lock before any row when the change may link groups: a link's
    foreign key share-locks the other group, so a change that locked its own row first and
    then waited for the graph could deadlock with one doing the same the other way round."""
    if set(STRUCTURE) & set(values) or "neighbourhood_role" in values:
        await lock_graph(session)


@requires("groups.manage")
async def create_group(session: AsyncSession, actor: Principal, values: Mapping[str, Any]) -> Group:
    """Create a group from ``values`` (setting name -> value; absent = default); its kind
    follows from them: composite with ``composed_of_ids``, dynamic with ``filter``."""
    await _lock_graph_for(session, values)
    group = Group(
        kind=GroupKind.STATIC,
        created_by_id=actor.user_id,
        **{setting: False for setting in BOOLEAN_SETTINGS},
    )
    if "name" not in values:
        raise UserInputError.single(["name"], ErrorCode.REQUIRED, "name is required.")
    group.composition_mode = CompositionMode.ANY
    await apply_settings(session, group, values)
    session.add(group)
    await session.flush()
    await apply_structure(session, group, values, new=True)
    change = GroupCreated(GroupSnapshot.of(group), actor.user_id)
    await rules_of(session).changed(session, change)
    if group.kind is not GroupKind.STATIC:
        cause = f"group {group.id} ({group.name!r}) was created"
        await after_definition_changed(session, group, cause, actor.user_id, role_changed=False)
    return group


@requires("groups.manage")
async def update_group(
    session: AsyncSession, actor: Principal, group_id: int, changes: Mapping[str, Any]
) -> Group:
    """Change the settings named in ``changes``; absent ones stay, None clears."""
    await _lock_graph_for(session, changes)
    group = await locked_group(session, group_id)
    before = GroupSnapshot.of(group)
    await apply_settings(session, group, changes)
    await apply_structure(session, group, changes, new=False)
    group.updated_at = utcnow()
    await session.flush()
    change = GroupUpdated(before, GroupSnapshot.of(group), actor.user_id)
    await rules_of(session).changed(session, change)
    redefined = sorted(set(STRUCTURE) & set(changes))
    role_changed = before.neighbourhood_role != group.neighbourhood_role
    if redefined or role_changed:
        what = ", ".join(redefined + (["neighbourhood_role"] if role_changed else []))
        cause = f"group {group.id} ({group.name!r}) changed its {what}"
        await after_definition_changed(
            session, group, cause, actor.user_id, role_changed=role_changed
        )
    return group


@requires("groups.manage")
async def delete_group(session: AsyncSession, actor: Principal, group_id: int) -> None:
    """Delete a group with its memberships and their history, unless another group uses it.

    Alone in the group graph (its lock, exclusive): a change of members that runs meanwhile
    could otherwise store derived rows of the group after it is gone (those rows have no
    foreign key to refuse them, migration 0009)."""
    await lock_graph(session)
    group = await locked_group(session, group_id)
    users = (await groups_using(session, [group_id]))[group_id]
    if users:
        names = ", ".join(repr(user.name) for user in users)
        raise UserInputError.single(
            ["group_id"],
            ErrorCode.GROUP_IN_USE,
            f"{group.name!r} is used by {names}; change those groups first.",
        )
    change = GroupDeleted(GroupSnapshot.of(group), actor.user_id)
    await rules_of(session).changed(session, change)
    # What foreign keys would cascade; these tables have none (migration 0009).
    await session.execute(delete(DerivedMembership).where(DerivedMembership.group_id == group_id))
    await session.execute(
        update(MembershipEvent).where(MembershipEvent.group_id == group_id).values(group_id=None)
    )
    await session.execute(delete(Group).where(Group.id == group_id))


@requires("groups.manage")
async def convert_to_static(session: AsyncSession, actor: Principal, group_id: int) -> Group:
    """Freeze a dynamic or composite group's current members into explicit memberships.

    The links are written for contacts that are members already (derived), with source
    CONVERSION and their history, in two set-based statements.
    """
    await lock_graph(session)
    group = await locked_group(session, group_id)
    if group.kind is GroupKind.STATIC:
        raise UserInputError.single(
            ["group_id"], ErrorCode.ALREADY_STATIC, f"{group.name!r} is already a static group."
        )
    before = GroupSnapshot.of(group)
    now = utcnow()
    actor_pk = actor.user_id
    members = await members_query(session, group_id)
    await session.execute(
        insert(Membership).from_select(
            ["group_id", "contact_id", "member_since", "added_by_id", "source"],
            members.with_only_columns(
                literal(group_id),
                Contact.id,
                literal(now, UtcDateTime()),
                literal(actor_pk, Integer()),
                literal(MembershipSource.CONVERSION.value),
            ),
        )
    )
    await session.execute(
        insert(MembershipEvent).from_select(
            ["group_id", "contact_id", "action", "source", "actor_id", "occurred_at"],
            select(
                Membership.group_id,
                Membership.contact_id,
                literal(MembershipAction.ADDED.value),
                literal(MembershipSource.CONVERSION.value),
                literal(actor_pk, Integer()),
                literal(now, UtcDateTime()),
            )
            .where(Membership.group_id == group_id)
            .order_by(Membership.contact_id),
        )
    )
    await session.execute(delete(GroupLink).where(GroupLink.group_id == group_id))
    # The same members, now explicit: no one enters or leaves, so no one is mailed as new.
    await session.execute(delete(DerivedMembership).where(DerivedMembership.group_id == group_id))
    group.kind = GroupKind.STATIC
    group.filter = None
    group.updated_at = now
    await session.flush()
    after = GroupSnapshot.of(group)
    await rules_of(session).changed(session, GroupUpdated(before, after, actor_pk))
    return group
