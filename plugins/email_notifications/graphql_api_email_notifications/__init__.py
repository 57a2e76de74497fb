"""E-mail a group's ``newMemberEmailTemplate`` to each new member ("Verstuur e-mail bij
nieuwe contactkoppeling"), through the notification outbox.

Every path that links a contact (single, bulk, portal, import) goes through the one
membership service, which records ``members.added``; the worker hands each to this plugin
at least once. The Message-ID comes from the delivery id, so a retried delivery is
recognisably the same message. Settings: ``GRAPHQL_API_SMTP_HOST``, ``_PORT``, ``_FROM``,
``_USERNAME``, ``_PASSWORD``, ``_STARTTLS``, ``_TIMEOUT_SECONDS``, and ``_CATCH``, which
logs each message instead of sending it (``make run`` sets it).
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import (
    Contact,
    EmailTemplate,
    Event,
    Group,
    SkipDelivery,
    User,
    hookimpl,
    render,
)

logger = logging.getLogger(__name__)

__version__ = "0.1.0"
PLUGIN_NAME = NAME = "email_notifications"


class SmtpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRAPHQL_API_SMTP_", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 25
    sender: str = Field("groepen@example.coop", validation_alias="GRAPHQL_API_SMTP_FROM")
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_seconds: float = 20.0
    portal_url: str = Field(
        "http://127.0.0.1:8000/portal", validation_alias="GRAPHQL_API_PORTAL_URL"
    )
    """Where the customer portal's frontend lives; invitation and reset links point there."""
    catch: bool = False
    """Log each message (recipient and subject; its text at DEBUG) instead of sending it:
    for development, where no mail server listens."""


@hookimpl
def plugin_settings() -> type[BaseSettings]:
    return SmtpSettings


@hookimpl
def event_subscriptions() -> list[str]:
    return ["members.added", *PORTAL_MAILS]


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


@hookimpl
async def deliver(
    event: Event, delivery_id: int, session: AsyncSession, settings: SmtpSettings
) -> None:
    if event.type in PORTAL_MAILS:
        subject, text = PORTAL_MAILS[event.type]
        data = event.data
        body = text.format(
            name=data["name"],
            url=settings.portal_url.rstrip("/"),
            token=data["token"],
            expires=data["expiresAt"][:16].replace("T", " ") + " UTC",
        )
        await _send(settings, delivery_id, data["email"], subject, body, None)
        return
    group_data = event.data["group"]
    if not group_data["email_on_new_member"] or group_data["new_member_email_template_id"] is None:
        raise SkipDelivery("the group does not e-mail new members")
    contact = await session.get(Contact, event.data["contactId"])
    if contact is None:
        raise SkipDelivery("the contact no longer exists")
    if not contact.email:
        raise SkipDelivery("the contact has no e-mail address")
    template = await session.get(EmailTemplate, group_data["new_member_email_template_id"])
    if template is None:
        raise SkipDelivery("the group's template no longer exists")
    group = await session.get(Group, group_data["id"])
    responsible = (
        await session.get(User, group.responsible_id) if group and group.responsible_id else None
    )
    fields = merge_fields(contact, group_data, group, responsible)
    rendered = await render(template.subject, template.body, fields)
    await _send(
        settings, delivery_id, contact.email, rendered.subject, rendered.text, rendered.html
    )


async def _send(
    settings: SmtpSettings,
    delivery_id: int,
    to: str,
    subject: str,
    text: str,
    html: str | None,
) -> None:
    """One message, its Message-ID made from the delivery id so a retry is the same mail."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.sender
    message["To"] = to
    domain = settings.sender.rpartition("@")[2] or "graphql-api"
    message["Message-ID"] = f"<delivery-{delivery_id}@{domain}>"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    if settings.catch:
        logger.info("E-mail caught, not sent: to %s, subject %r", message["To"], message["Subject"])
        logger.debug("E-mail caught, its text:\n%s", text)
        return
    await aiosmtplib.send(
        message,
        hostname=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password,
        start_tls=settings.starttls,
        timeout=settings.timeout_seconds,
    )


def merge_fields(
    contact: Contact, group_data: dict[str, Any], group: Group | None, responsible: User | None
) -> dict[str, Any]:
    """Plain values only: the template sees data, never objects with methods."""
    return {
        "contact": {
            "firstName": contact.first_name,
            "lastName": contact.last_name,
            "displayName": contact.display_name,
            "organisationName": contact.organisation_name,
            "email": contact.email,
            "phone": contact.phone,
            "street": contact.street,
            "postalCode": contact.postal_code,
            "city": contact.city,
        },
        "group": {
            "name": group.name if group else group_data["name"],
            "description": group.description if group else None,
            "responsible": {
                "name": responsible.name if responsible else None,
                "email": responsible.email if responsible else None,
            },
        },
    }
