"""Contacts' opt-outs of a group's mail: recorded by an unsubscribe link, a mailing list
or the portal, respected by every mail to the group's members, and withdrawn on the
portal. Each change is a ``mail.opted_out`` / ``mail.opt_out_withdrawn`` event in its
transaction, so a mailing list linked to the group follows."""

from __future__ import annotations

from sqlalchemy import Select, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.email_templates.models import MailOptOut, OptOutSource
from graphql_api.groups.changes import MailOptOutChanged
from graphql_api.groups.rules import rules_of
from graphql_api.kernel.db import utcnow


def opted_out(group_id: int) -> Select[tuple[int]]:
    """The ids of the contacts opted out of ``group_id``'s mail, as a subquery for
    ``NOT IN`` or an anti-join: a whole mailing skips them in one statement."""
    return select(MailOptOut.contact_id).where(MailOptOut.group_id == group_id)


async def record_opt_out(
    session: AsyncSession, contact_id: int, group_id: int, source: OptOutSource
) -> bool:
    """Opt ``contact_id`` out of ``group_id``'s mail; False when it was already (the
    first source stays). Both must exist (the caller has checked them)."""
    if await _exists(session, contact_id, group_id):
        return False
    await session.execute(
        insert(MailOptOut).values(
            contact_id=contact_id, group_id=group_id, source=source, created_at=utcnow()
        )
    )
    await _changed(session, contact_id, group_id, source, opted_out=True)
    return True


async def withdraw_opt_out(
    session: AsyncSession, contact_id: int, group_id: int, source: OptOutSource
) -> bool:
    """Withdraw the opt-out (``source``: who did it); False when there was none."""
    gone = await session.execute(
        delete(MailOptOut).where(
            MailOptOut.contact_id == contact_id, MailOptOut.group_id == group_id
        )
    )
    if not gone.rowcount:
        return False
    await _changed(session, contact_id, group_id, source, opted_out=False)
    return True


async def _exists(session: AsyncSession, contact_id: int, group_id: int) -> bool:
    found = await session.scalar(
        select(MailOptOut.contact_id).where(
            MailOptOut.contact_id == contact_id, MailOptOut.group_id == group_id
        )
    )
    return found is not None


async def _changed(
    session: AsyncSession, contact_id: int, group_id: int, source: OptOutSource, *, opted_out: bool
) -> None:
    change = MailOptOutChanged(contact_id, group_id, OptOutSource(source).value, opted_out)
    await rules_of(session).changed(session, change)
