"""Batch loaders of a contact's groups and links, read from the groups' domain: one
statement per field per request, whatever the number of contacts asked for."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.email_templates.opt_outs import OptOut, opt_outs_of
from graphql_api.groups import membership_reads
from graphql_api.groups.models import Group, Membership


async def load_memberships(
    session: AsyncSession, contact_ids: Sequence[int]
) -> list[list[Membership]]:
    found = await membership_reads.memberships_of_contacts(session, contact_ids)
    return [found[contact_id] for contact_id in contact_ids]


async def load_visible_memberships(
    session: AsyncSession, contact_ids: Sequence[int]
) -> list[list[Membership]]:
    found = await membership_reads.memberships_of_contacts(
        session, contact_ids, show_on_contact_only=True
    )
    return [found[contact_id] for contact_id in contact_ids]


async def load_groups_of_contacts(
    session: AsyncSession, contact_ids: Sequence[int]
) -> list[list[Group]]:
    found = await membership_reads.groups_of_contacts(session, contact_ids)
    return [found[contact_id] for contact_id in contact_ids]


async def load_mail_opt_outs(
    session: AsyncSession, contact_ids: Sequence[int]
) -> list[list[OptOut]]:
    found = await opt_outs_of(session, contact_ids)
    return [found.get(contact_id, []) for contact_id in contact_ids]
