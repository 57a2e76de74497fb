"""A contact's own data (GDPR article 15) and its erasure (article 17)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.imports.models import ImportRow
from graphql_api.contacts.models import Contact
from graphql_api.groups.changes import ContactErased
from graphql_api.groups.derived import after_contacts_changed
from graphql_api.groups.graph import lock_graph
from graphql_api.groups.models import Group, Membership, MembershipEvent
from graphql_api.groups.rules import rules_of
from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.notifications.models import OutboxEvent
from graphql_api.portal.models import PortalAccount, PortalEvent

PERSONAL_FIELDS = (
    "first_name",
    "last_name",
    "organisation_name",
    "email",
    "phone",
    "street",
    "postal_code",
    "city",
    "external_id",
)
PORTAL_MESSAGES = ("portal.invitation", "portal.password_reset")


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


async def my_data(session: AsyncSession, contact_id: int) -> dict[str, Any]:
    """Everything the service holds about the contact, as plain JSON."""
    contact = await session.get(Contact, contact_id)
    assert contact is not None, "a live portal session belongs to an existing contact"
    memberships = await session.execute(
        select(Group.name, Membership.member_since, Membership.source)
        .join(Group, Group.id == Membership.group_id)
        .where(Membership.contact_id == contact_id)
        .order_by(Membership.member_since, Group.name_key)
    )
    history = await session.execute(
        select(
            Group.name, MembershipEvent.action, MembershipEvent.source, MembershipEvent.occurred_at
        )
        .join(Group, Group.id == MembershipEvent.group_id)
        .where(MembershipEvent.contact_id == contact_id)
        .order_by(MembershipEvent.occurred_at, MembershipEvent.id)
    )
    account = await session.scalar(
        select(PortalAccount).where(PortalAccount.contact_id == contact_id)
    )
    events = (
        await session.execute(
            select(PortalEvent.kind, PortalEvent.occurred_at)
            .where(PortalEvent.account_id == account.id)
            .order_by(PortalEvent.id)
        )
        if account
        else []
    )
    return {
        "contact": {
            "kind": contact.kind.value,
            **{_camel(name): getattr(contact, name) for name in PERSONAL_FIELDS},
            "createdAt": _when(contact.created_at),
        },
        "memberships": [
            {"group": name, "since": _when(since), "source": source.value}
            for name, since, source in memberships
        ],
        "history": [
            {"group": name, "action": action.value, "source": source.value, "at": _when(at)}
            for name, action, source, at in history
        ],
        "portalAccount": None
        if account is None
        else {
            "email": account.email,
            "status": account.status.value,
            "invitedAt": _when(account.invited_at),
            "activatedAt": _when(account.activated_at),
            "lastLoginAt": _when(account.last_login_at),
            "events": [{"kind": kind, "at": _when(at)} for kind, at in events],
        },
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@requires("contacts.manage")
async def erase_contact(session: AsyncSession, actor: Principal, contact_id: int) -> Contact:
    """Remove a contact's personal data; keep the row and its membership history,
    anonymised, so counts over time stay right; remove the portal account and the mails
    waiting for it; tell plugins (``contact.erased``) so copies elsewhere go too; then
    bring the derived groups up to date.

    Plugins are told first (``validate_change``, ``apply_change``), the groups refreshed
    after: what a plugin deletes of the contact in ``apply_change``, data its filter
    fields read among it, is gone by the time the dynamic groups are computed again, so
    the plugin need not refresh them itself."""
    await lock_graph(session, shared=True)
    contact = await session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        raise UserInputError.single(["contact_id"], ErrorCode.NOT_FOUND, "No contact with this id.")
    for name in PERSONAL_FIELDS:
        setattr(contact, name, None)
    await session.flush()
    # The rows of imports that made or found the contact hold it as the file had it.
    await session.execute(
        update(ImportRow)
        .where(ImportRow.contact_id == contact_id)
        .values(cells=[], values={}, holds_cells=False)
    )
    await session.execute(delete(PortalAccount).where(PortalAccount.contact_id == contact_id))
    waiting = await session.execute(
        select(OutboxEvent.id, OutboxEvent.data).where(OutboxEvent.type.in_(PORTAL_MESSAGES))
    )
    mails = [event_id for event_id, data in waiting if data.get("contactId") == contact_id]
    if mails:
        await session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(mails)))
    await session.flush()
    await rules_of(session).changed(session, ContactErased(contact_id, actor.user_id))
    # Every dynamic group may have tested what went: the erased fields, or plugins' data.
    cause = f"contact {contact_id} was erased"
    await after_contacts_changed(session, [contact_id], cause, actor.user_id)
    return contact
