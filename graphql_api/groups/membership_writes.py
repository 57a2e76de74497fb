"""Adding and removing the explicit members of static groups, with their history.

Every path that adds or removes a member (GraphQL, the CLI, the demo, plugins) goes
through :func:`add_members` and :func:`remove_members`, so the rules and the append-only
history hold for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Integer, String, delete, exists, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.groups.changes import GroupSnapshot, MembersAdded, MembersRemoved
from graphql_api.groups.derived import after_members_changed
from graphql_api.groups.graph import lock_graph
from graphql_api.groups.lifecycle import locked_group
from graphql_api.groups.models import (
    Group,
    GroupKind,
    Membership,
    MembershipAction,
    MembershipEvent,
    MembershipSource,
)
from graphql_api.groups.rules import rules_of
from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.db import UtcDateTime, utcnow
from graphql_api.kernel.errors import ErrorCode, Problem, Problems, UserInputError
from graphql_api.kernel.repository import missing_ids
from graphql_api.kernel.sql import any_of

MAX_REPORTED_IDS = 20
"""How many unknown ids are reported one by one; a longer list of typos says nothing new."""


@requires("members.manage")
async def add_members(
    session: AsyncSession,
    actor: Principal,
    group_id: int,
    contact_ids: Sequence[int],
    source: MembershipSource,
    *,
    job_id: int | None = None,
) -> list[int]:
    """Link contacts to a static group; returns the ids newly linked, in the order given
    (existing members are skipped). The derived groups reading it follow in the same
    transaction. Set-based: a few statements however many contacts.

    With ``job_id`` (a chunk of a bulk job), contacts that no longer exist are skipped
    rather than refused, and the history names the job."""
    await lock_graph(session, shared=True)
    group = await static_group(session, group_id)
    wanted = await existing_contacts(session, contact_ids, skip_missing=job_id is not None)
    members = Membership.__table__.c
    new = select(
        literal(group.id),
        Contact.id,
        literal(utcnow(), UtcDateTime()),
        literal(actor.user_id, Integer()),
        literal(source.value),
    ).where(
        any_of(Contact.id, wanted),
        ~exists().where(members.group_id == group.id, members.contact_id == Contact.id),
    )
    inserted = await session.scalars(
        insert(Membership.__table__)
        .from_select(["group_id", "contact_id", "member_since", "added_by_id", "source"], new)
        .returning(members.contact_id)
    )
    linked = set(inserted)
    new_ids = tuple(c for c in wanted if c in linked)
    if new_ids:
        await _record(session, group.id, new_ids, MembershipAction.ADDED, source, actor, job_id)
        group.member_count += len(new_ids)
        change = MembersAdded(GroupSnapshot.of(group), new_ids, source, actor.user_id, None, job_id)
        await _changed_for(session, change, contact_ids)
        cause = _job(job_id) + f"{_contacts(new_ids)} added to group {group.id} ({group.name!r})"
        await after_members_changed(session, group, new_ids, cause, actor.user_id, job_id)
    return list(new_ids)


@requires("members.manage")
async def remove_members(
    session: AsyncSession,
    actor: Principal,
    group_id: int,
    contact_ids: Sequence[int],
    source: MembershipSource,
    *,
    job_id: int | None = None,
) -> list[int]:
    """Unlink contacts from a static group; returns the ids that were members. The derived
    groups reading it follow in the same transaction. With ``job_id``, as ``add_members``."""
    await lock_graph(session, shared=True)
    group = await static_group(session, group_id)
    wanted = await existing_contacts(session, contact_ids, skip_missing=job_id is not None)
    result = await session.execute(
        delete(Membership)
        .where(Membership.group_id == group.id, any_of(Membership.contact_id, wanted))
        .returning(Membership.contact_id)
    )
    removed = sorted(result.scalars())
    if removed:
        await _record(session, group.id, removed, MembershipAction.REMOVED, source, actor, job_id)
        group.member_count -= len(removed)
        change = MembersRemoved(
            GroupSnapshot.of(group), tuple(removed), source, actor.user_id, None, job_id
        )
        await _changed_for(session, change, contact_ids)
        cause = (
            _job(job_id) + f"{_contacts(removed)} removed from group {group.id} ({group.name!r})"
        )
        await after_members_changed(session, group, removed, cause, actor.user_id, job_id)
    return removed


def _job(job_id: int | None) -> str:
    """How a history row's cause names the bulk job it was written by."""
    return "" if job_id is None else f"job {job_id}: "


def _contacts(contact_ids: Sequence[int]) -> str:
    """``contact 17``, or ``3 contacts`` for more than one."""
    if len(contact_ids) == 1:
        return f"contact {contact_ids[0]}"
    return f"{len(contact_ids)} contacts"


async def _changed_for(
    session: AsyncSession, change: MembersAdded | MembersRemoved, given: Sequence[int]
) -> None:
    """Report a membership change; a problem a plugin raises about one contact
    (``("contact_ids", "<contact id>")``) is pointed at that contact's place in ``given``."""
    try:
        await rules_of(session).changed(session, change)
    except UserInputError as error:
        place = {contact_id: index for index, contact_id in reversed(list(enumerate(given)))}
        raise UserInputError(
            [
                Problem((p.field[0], str(place[int(p.field[1])])), p.code, p.message)
                if p.field[:1] == ("contact_ids",)
                and len(p.field) == 2
                and p.field[1].isdigit()
                and int(p.field[1]) in place
                else p
                for p in error.problems
            ]
        ) from error


async def _record(
    session: AsyncSession,
    group_id: int,
    contact_ids: Sequence[int],
    action: MembershipAction,
    source: MembershipSource,
    actor: Principal,
    job_id: int | None,
) -> None:
    """The history rows of a change, in one statement."""
    rows = select(
        literal(group_id),
        Contact.id,
        literal(action.value),
        literal(source.value),
        literal(actor.user_id, Integer()),
        literal(utcnow(), UtcDateTime()),
        literal(_job(job_id).removesuffix(": ") or None, String()),
    ).where(any_of(Contact.id, contact_ids))
    columns = ["group_id", "contact_id", "action", "source", "actor_id", "occurred_at", "cause"]
    await session.execute(
        insert(MembershipEvent.__table__).from_select(columns, rows.order_by(Contact.id))
    )


async def static_group(session: AsyncSession, group_id: int) -> Group:
    group = await locked_group(session, group_id)
    if group.kind is not GroupKind.STATIC:
        raise UserInputError.single(
            ["group_id"],
            ErrorCode.NOT_STATIC,
            f"{group.name!r} is a {group.kind.lower()} group: its members follow from its "
            "definition and cannot be added or removed one by one.",
        )
    return group


async def existing_contacts(
    session: AsyncSession, contact_ids: Sequence[int], *, skip_missing: bool = False
) -> list[int]:
    """The distinct ids in call order, or an error for each unknown one (by list position);
    with ``skip_missing``, the unknown ones left out."""
    missing = set(await missing_ids(session, Contact, contact_ids))
    if missing and skip_missing:
        return [c for c in dict.fromkeys(contact_ids) if c not in missing]
    if missing:
        problems = Problems()
        for index, contact_id in enumerate(contact_ids):
            if contact_id in missing and len(problems.items) < MAX_REPORTED_IDS:
                problems.add(
                    ["contact_ids", str(index)], ErrorCode.NOT_FOUND, "No contact with this id."
                )
        problems.raise_if_any()
    return list(dict.fromkeys(contact_ids))
