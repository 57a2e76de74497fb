"""Contacts' opt-outs of a group's mail: recorded by an unsubscribe link, a mailing list
or the portal, respected by every mail to the group's members, and withdrawn on the
portal. Each change is a ``mail.opted_out`` / ``mail.opt_out_withdrawn`` event in its
transaction, so a mailing list linked to the group follows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.email_templates.models import MailOptOut, OptOutSource
from graphql_api.groups.changes import MailOptOutChanged
from graphql_api.groups.models import Group
from graphql_api.groups.rules import rules_of
from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.kernel.sql import any_of


@dataclass(frozen=True)
class OptOut:
    """One opt-out, as a contact or staff see it."""

    group_id: int
    group_name: str
    source: OptOutSource
    since: datetime


def opted_out(group_id: int) -> Select[tuple[int]]:
    """The ids of the contacts opted out of ``group_id``'s mail, as a subquery for
    ``NOT IN`` or an anti-join: a whole mailing skips them in one statement."""
    return select(MailOptOut.contact_id).where(MailOptOut.group_id == group_id)


async def record_opt_outs(
    session: AsyncSession, contact_ids: Sequence[int], group_id: int, source: OptOutSource
) -> list[int]:
    """Opt these contacts out of ``group_id``'s mail, in two statements however many they
    are; the ids of those who were not opted out yet (the others keep their first
    source). The contacts and the group must exist (the caller has checked them)."""
    wanted = sorted(set(contact_ids))
    if not wanted:
        return []
    had = set(
        await session.scalars(
            select(MailOptOut.contact_id).where(
                MailOptOut.group_id == group_id, any_of(MailOptOut.contact_id, wanted)
            )
        )
    )
    new = [contact_id for contact_id in wanted if contact_id not in had]
    if new:
        now = utcnow()
        rows = [
            {"contact_id": c, "group_id": group_id, "source": source, "created_at": now}
            for c in new
        ]
        await session.execute(insert(MailOptOut.__table__), rows)
        await _changed(session, new, group_id, source, opted_out=True)
    return new


async def withdraw_opt_outs(
    session: AsyncSession, contact_ids: Sequence[int], group_id: int, source: OptOutSource
) -> list[int]:
    """Withdraw these contacts' opt-outs of ``group_id``'s mail (``source``: who did it);
    the ids of those who had one."""
    wanted = sorted(set(contact_ids))
    if not wanted:
        return []
    gone = list(
        await session.scalars(
            delete(MailOptOut)
            .where(MailOptOut.group_id == group_id, any_of(MailOptOut.contact_id, wanted))
            .returning(MailOptOut.contact_id)
        )
    )
    if gone:
        await _changed(session, sorted(gone), group_id, source, opted_out=False)
    return sorted(gone)


async def record_opt_out(
    session: AsyncSession, contact_id: int, group_id: int, source: OptOutSource
) -> bool:
    """``record_opt_outs`` of one contact: whether it was new."""
    return bool(await record_opt_outs(session, [contact_id], group_id, source))


async def withdraw_opt_out(
    session: AsyncSession, contact_id: int, group_id: int, source: OptOutSource
) -> bool:
    """``withdraw_opt_outs`` of one contact: whether it had one."""
    return bool(await withdraw_opt_outs(session, [contact_id], group_id, source))


async def _changed(
    session: AsyncSession,
    contact_ids: Sequence[int],
    group_id: int,
    source: OptOutSource,
    *,
    opted_out: bool,
) -> None:
    change = MailOptOutChanged(tuple(contact_ids), group_id, OptOutSource(source).value, opted_out)
    await rules_of(session).changed(session, change)


async def opt_outs_of(session: AsyncSession, contact_ids: Sequence[int]) -> dict[int, list[OptOut]]:
    """Each contact's opt-outs, by group name, in one statement for all of them."""
    rows = await session.execute(
        select(
            MailOptOut.contact_id,
            MailOptOut.group_id,
            Group.name,
            MailOptOut.source,
            MailOptOut.created_at,
        )
        .join(Group, Group.id == MailOptOut.group_id)
        .where(any_of(MailOptOut.contact_id, contact_ids))
        .order_by(Group.name_key, Group.id)
    )
    found: dict[int, list[OptOut]] = defaultdict(list)
    for contact_id, *opt_out in rows:
        found[contact_id].append(OptOut(*opt_out))
    return found


@requires("contacts.manage")
async def opt_out_for_contact(
    session: AsyncSession, actor: Principal, contact_id: int, group_id: int
) -> list[OptOut]:
    """Staff record a contact's opt-out of a group's mail at their request (source
    ``STAFF``): of any group, member or not; twice is once."""
    await _check_both_exist(session, contact_id, group_id)
    await record_opt_out(session, contact_id, group_id, OptOutSource.STAFF)
    return (await opt_outs_of(session, [contact_id]))[contact_id]


@requires("contacts.manage")
async def withdraw_for_contact(
    session: AsyncSession, actor: Principal, contact_id: int, group_id: int
) -> list[OptOut]:
    """Staff withdraw a contact's opt-out at their request; none is ``NOT_FOUND``."""
    await _check_both_exist(session, contact_id, group_id)
    if not await withdraw_opt_out(session, contact_id, group_id, OptOutSource.STAFF):
        raise UserInputError.single(
            ["group_id"], ErrorCode.NOT_FOUND, "The contact has no opt-out of this group's mail."
        )
    return (await opt_outs_of(session, [contact_id]))[contact_id]


async def _check_both_exist(session: AsyncSession, contact_id: int, group_id: int) -> None:
    if await session.get(Contact, contact_id) is None:
        raise UserInputError.single(["contact_id"], ErrorCode.NOT_FOUND, "No contact with this id.")
    if await session.get(Group, group_id) is None:
        raise UserInputError.single(["group_id"], ErrorCode.NOT_FOUND, "No group with this id.")
