"""The built-in e-mail plugin: welcome mails to a group's new members ("Verstuur e-mail bij
nieuwe contactkoppeling") and the portal's mails, from the notification outbox
(``welcome``); mail to every member of a group ("E-mail naar groep") as a job
(``group_mail``, ``api``), with an unsubscribe link in each (``unsubscribe``); all of it
over SMTP (``sending``).

Settings: ``GRAPHQL_API_SMTP_HOST``, ``_PORT``, ``_FROM``, ``_USERNAME``, ``_PASSWORD``,
``_STARTTLS`` or ``_TLS`` (implicit TLS) with ``_CA_FILE``, ``_TIMEOUT_SECONDS``,
``_CONNECTIONS``, ``_RATE`` (group mails per second), ``_CATCH`` (log instead of send),
``GRAPHQL_API_GROUP_MAIL_CHUNK_SIZE``, ``GRAPHQL_API_PUBLIC_URL`` and
``GRAPHQL_API_PORTAL_URL``; the plugin's README has what each does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import Change, ContactErased, Event, JobKind, hookimpl
from graphql_api_email_notifications import api, group_mail, unsubscribe
from graphql_api_email_notifications.sending import SmtpSettings, UntrustedMailServer
from graphql_api_email_notifications.welcome import PORTAL_MAILS, deliver_event

__version__ = "0.1.0"
PLUGIN_NAME = NAME = "email_notifications"
requires_api = ">=2.1,<3"
"""Plugin API 2.1: jobs, HTTP routes, merge fields and opt-outs."""

__all__ = ["PORTAL_MAILS", "SmtpSettings", "UntrustedMailServer"]


@hookimpl
def plugin_settings() -> type[BaseSettings]:
    return SmtpSettings


@hookimpl
def migrations() -> str:
    return str(Path(__file__).parent / "migrations")


@hookimpl
def event_subscriptions() -> list[str]:
    return ["members.added", *PORTAL_MAILS]


@hookimpl
async def deliver(
    event: Event, delivery_id: int, session: AsyncSession, settings: SmtpSettings
) -> None:
    await deliver_event(event, delivery_id, session, settings)


@hookimpl
async def apply_change(session: AsyncSession, change: Change) -> None:
    """An erased contact's address goes from the group mails' recipients too."""
    if isinstance(change, ContactErased):
        await group_mail.forget_address(session, change.contact_id)


@hookimpl
def register_permissions() -> dict[str, str]:
    return {
        group_mail.PERMISSION: "Send mail to every member of a group (E-mail naar groep), "
        "and read group mails with their recipients; needs `groups.view` too."
    }


@hookimpl
def error_codes() -> dict[str, str]:
    return dict(group_mail.ERROR_CODES)


@hookimpl
def job_kinds(settings: SmtpSettings) -> dict[str, JobKind]:
    return {group_mail.KIND: group_mail.make_kind(settings)}


@hookimpl
def http_routes() -> list[Any]:
    return list(unsubscribe.ROUTES)


@hookimpl
def graphql_types() -> list[type]:
    return list(api.TYPES)


@hookimpl
def query_fields() -> list[Any]:
    return api.query_fields()


@hookimpl
def mutation_fields(settings: SmtpSettings) -> list[Any]:
    return api.mutation_fields(settings)
