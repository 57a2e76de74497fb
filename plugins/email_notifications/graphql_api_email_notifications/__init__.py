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
    catch: bool = False
    """Log each message (recipient and subject; its text at DEBUG) instead of sending it:
    for development, where no mail server listens."""


@hookimpl
def plugin_settings() -> type[BaseSettings]:
    return SmtpSettings


@hookimpl
def event_subscriptions() -> list[str]:
    return ["members.added"]


@hookimpl
async def deliver(
    event: Event, delivery_id: int, session: AsyncSession, settings: SmtpSettings
) -> None:
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
    rendered = render(template.subject, template.body, fields)
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = settings.sender
    message["To"] = contact.email
    domain = settings.sender.rpartition("@")[2] or "graphql-api"
    message["Message-ID"] = f"<delivery-{delivery_id}@{domain}>"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    if settings.catch:
        logger.info("E-mail caught, not sent: to %s, subject %r", message["To"], message["Subject"])
        logger.debug("E-mail caught, its text:\n%s", rendered.text)
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
