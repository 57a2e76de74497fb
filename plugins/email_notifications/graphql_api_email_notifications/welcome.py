"""Welcome mails ("Verstuur e-mail bij nieuwe contactkoppeling") and the portal's mails,
delivered from the notification outbox.

Every path that links a contact (single, bulk, portal, import) goes through the one
membership service, which records ``members.added``: one event per group and up to 1,000
new members, which the worker hands to this plugin as one delivery, at least once. The
plugin mails each of the event's contacts with an e-mail address, when the group (as the
event recorded it) has ``emailOnNewMember`` and a template; the messages are rendered
first, in one batch, then sent over a few SMTP connections at once.

At least once, per event: welcomes keep no table, so the plugin cannot remember which of
an event's mails went out in an attempt that failed (a connection lost, a temporary 4xx
refusal, a timeout): the retry sends all of them again. Each message's Message-ID is made
from the event id and the contact id, ``<event-E-contact-C@domain>``, the same on every
retry, so a receiver can tell a repeat. A message the server refuses for good is logged
and not retried; when the server refuses every message of the event, the attempt fails
instead (and is retried, then DEAD). The portal's mails have one recipient each; their
Message-ID comes from the delivery id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import (
    Contact,
    EmailTemplate,
    Event,
    MailOptOut,
    SkipDelivery,
    merge_values,
    opted_out,
    render_many,
)
from graphql_api_email_notifications.sending import Mail, SmtpSettings, message, send

logger = logging.getLogger("graphql_api_email_notifications")

PORTAL_MAILS = {
    "portal.invitation": (
        "Uw uitnodiging voor het klantenportaal",
        "Beste {name},\n\nU bent uitgenodigd voor het klantenportaal. Kies uw wachtwoord via "
        "{url}/accept?token={token}\n\nDeze link werkt één keer, tot {expires}.",
    ),
    "portal.password_reset": (
        "Nieuw wachtwoord voor het klantenportaal",
        "Beste {name},\n\nKies een nieuw wachtwoord via {url}/reset?token={token}\n\n"
        "Deze link werkt één keer, tot {expires}. Vroeg u hier niet om? Dan kunt u deze "
        "e-mail negeren.",
    ),
}
"""Subject and text of the portal's mails; the token is only ever in clear here."""


async def deliver_event(
    event: Event, delivery_id: int, session: AsyncSession, settings: SmtpSettings
) -> None:
    """One delivery of a subscribed event: a portal mail, or an event's welcomes."""
    if event.type in PORTAL_MAILS:
        subject, text = PORTAL_MAILS[event.type]
        data = event.data
        body = text.format(
            name=data["name"],
            url=settings.portal_url.rstrip("/"),
            token=data["token"],
            expires=data["expiresAt"][:16].replace("T", " ") + " UTC",
        )
        message_id = f"<delivery-{delivery_id}@{settings.domain}>"
        await send(settings, [message(settings, message_id, data["email"], subject, body, None)])
        return
    await send(settings, await _welcomes(event, session, settings))


async def _welcomes(event: Event, session: AsyncSession, settings: SmtpSettings) -> list[Mail]:
    """The group's template rendered for each new member of ``event`` with an e-mail
    address who has not opted out of the group's mail, in the event's order;
    ``SkipDelivery`` when there is nobody to mail."""
    group_data = event.data["group"]
    if not group_data["email_on_new_member"] or group_data["new_member_email_template_id"] is None:
        raise SkipDelivery("the group does not e-mail new members")
    contact_ids: Sequence[int] = event.data["contactIds"]
    found = {
        pk: email
        for pk, email in await session.execute(
            select(Contact.id, Contact.email).where(Contact.id.in_(contact_ids))
        )
    }
    out = set(
        await session.scalars(
            opted_out(group_data["id"]).where(MailOptOut.contact_id.in_(contact_ids))
        )
    )
    recipients = [pk for pk in contact_ids if found.get(pk) and pk not in out]
    if len(recipients) < len(contact_ids):
        without = sum(1 for pk in contact_ids if pk in found and not found[pk])
        gone = len(contact_ids) - len(found)
        unmailed = ", ".join(
            [f"{without} without an e-mail address"] * bool(without)
            + [f"{gone} no longer existing"] * bool(gone)
            + [f"{len(out)} opted out of the group's mail"] * bool(out)
        )
        if not recipients:
            raise SkipDelivery(f"no new member to e-mail ({unmailed})")
        logger.info(
            "event %s: %s of its new members not e-mailed (%s)",
            event.id,
            len(contact_ids) - len(recipients),
            unmailed,
        )
    template = await session.get(EmailTemplate, group_data["new_member_email_template_id"])
    if template is None:
        raise SkipDelivery("the group's template no longer exists")
    values = await merge_values(session, group_data["id"], recipients)
    for fields in values.values():
        # A group deleted since keeps the name the event recorded.
        fields["group"]["name"] = fields["group"]["name"] or group_data["name"]
    # Every message is rendered before the first is sent: a template that fails for one
    # contact fails the attempt before anybody is mailed.
    rendered = await render_many(template.subject, template.body, [values[pk] for pk in recipients])
    mails = []
    for pk, result in zip(recipients, rendered, strict=True):
        if isinstance(result, Exception):
            raise result
        message_id = f"<event-{event.id}-contact-{pk}@{settings.domain}>"
        mails.append(
            message(settings, message_id, found[pk], result.subject, result.text, result.html)
        )
    return mails
