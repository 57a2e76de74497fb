"""A contact's opt-outs of groups' mail, on the portal: seen, made and withdrawn by the
contact themselves. A contact may opt out of the mail of a group they are in (through a
rule too); an opt-out they have they see and may withdraw, whatever became of their
membership since (the group sent them mail, so its name is theirs to see)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.email_templates.models import OptOutSource
from graphql_api.email_templates.opt_outs import (
    OptOut,
    opt_outs_of,
    record_opt_out,
    withdraw_opt_out,
)
from graphql_api.groups.membership_reads import groups_containing
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.portal.accounts import PortalSession


async def opt_outs(session: AsyncSession, contact_id: int) -> list[OptOut]:
    """The contact's opt-outs, by group name."""
    return (await opt_outs_of(session, [contact_id]))[contact_id]


async def opt_out(session: AsyncSession, portal: PortalSession, group_id: int) -> list[OptOut]:
    """Opt out of the mail of a group the contact is in; already opted out changes
    nothing. Any other group is NOT_FOUND."""
    held = await groups_containing(session, [group_id], [portal.contact_id])
    if (group_id, portal.contact_id) not in held:
        raise UserInputError.single(
            ["group_id"], ErrorCode.NOT_FOUND, "You are not in a group with this id."
        )
    await record_opt_out(session, portal.contact_id, group_id, OptOutSource.PORTAL)
    return await opt_outs(session, portal.contact_id)


async def withdraw(session: AsyncSession, portal: PortalSession, group_id: int) -> list[OptOut]:
    """Withdraw an opt-out the contact has; one they do not have is NOT_FOUND."""
    if not await withdraw_opt_out(session, portal.contact_id, group_id, OptOutSource.PORTAL):
        raise UserInputError.single(
            ["group_id"], ErrorCode.NOT_FOUND, "You have no opt-out of this group's mail."
        )
    return await opt_outs(session, portal.contact_id)
