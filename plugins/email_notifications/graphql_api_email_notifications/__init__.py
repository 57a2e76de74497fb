"""E-mail a group's ``newMemberEmailTemplate`` to each new member ("Verstuur e-mail bij
nieuwe contactkoppeling"), through the notification outbox.

Every path that links a contact (single, bulk, portal, import) goes through the one
membership service, which records ``members.added``: one event per group and up to 1,000
new members (plugin API 2), which the worker hands to this plugin as one delivery, at least
once. The plugin mails each of the event's contacts with an e-mail address, when the group
(as the event recorded it) has ``emailOnNewMember`` and a template; the messages are
rendered first, then sent over up to ``_CONNECTIONS`` SMTP connections at once.

At least once, per event: the plugin keeps no table, so it cannot remember which of an
event's mails went out in an attempt that failed (a connection lost, a temporary 4xx
refusal, a timeout): the retry sends all of them again. Each message's Message-ID is
made from the event id and the contact id, ``<event-E-contact-C@domain>``, the same on
every retry, so a receiver can tell a repeat. A message the server refuses for good (a
5xx answer to its recipient or its data) is logged and not retried, so one bad address
does not repeat the others' mails; when the server refuses every message of the event,
the attempt fails instead (and is retried, then DEAD). The portal's mails have one
recipient each; their Message-ID comes from the delivery id.

Settings: ``GRAPHQL_API_SMTP_HOST``, ``_PORT``, ``_FROM``, ``_USERNAME``, ``_PASSWORD``,
``_STARTTLS`` or ``_TLS`` (implicit TLS) with ``_CA_FILE``, ``_TIMEOUT_SECONDS``,
``_CONNECTIONS``, and ``_CATCH``, which logs each message instead of sending it (``make
run`` sets it). Over TLS the server's certificate is always verified: a certificate that
does not verify fails the attempt, which is retried, and no mail goes out in clear.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Iterator, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import select
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
requires_api = ">=2,<3"
"""Plugin API 2: a ``members.added`` event carries ``contactIds``."""


ENV_PREFIX = "GRAPHQL_API_SMTP_"


class SmtpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 25
    sender: str = Field("groepen@example.coop", validation_alias="GRAPHQL_API_SMTP_FROM")
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    """Upgrade the connection with STARTTLS (port 587, usually); a server that does not
    offer it fails the attempt rather than getting the mail in clear."""
    tls: bool = False
    """Implicit TLS: TLS from the first byte (port 465, usually)."""
    ca_file: Path | None = None
    """A PEM bundle of the CAs the server's certificate must be signed by, instead of the
    system's (a relay with a CA of its own); read once, at startup."""
    timeout_seconds: float = 20.0
    connections: int = Field(2, ge=1, le=32)
    """How many SMTP connections one event's mails are sent over at once: an event has up
    to 1,000 of them, all within the outbox's handler timeout. The worker delivers a batch
    of events at once, each with its own connections."""
    portal_url: str = Field(
        "http://127.0.0.1:8000/portal", validation_alias="GRAPHQL_API_PORTAL_URL"
    )
    """Where the customer portal's frontend lives; invitation and reset links point there."""
    catch: bool = False
    """Log each message (recipient and subject; its text at DEBUG) instead of sending it:
    for development, where no mail server listens."""

    def __init__(self, **values: Any) -> None:
        # The plugin host reports a plugin's settings error by its text, and pydantic's
        # spans several lines: an operator gets one, naming each variable.
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ValueError("; ".join(map(_problem, error.errors()))) from None

    @field_validator("ca_file")
    @classmethod
    def _holds_certificates(cls, ca_file: Path | None) -> Path | None:
        """Read the bundle now, so that a bad one stops the start, not every delivery."""
        if ca_file is not None:
            try:
                _tls_context(ca_file)
            except OSError as error:  # ssl.SSLError too: no PEM certificate in it
                raise ValueError(f"cannot read CA certificates from {ca_file}: {error}") from None
        return ca_file

    @model_validator(mode="after")
    def _one_way_to_encrypt(self) -> SmtpSettings:
        if self.starttls and self.tls:
            raise ValueError(
                f"{ENV_PREFIX}STARTTLS and {ENV_PREFIX}TLS are both true: set only "
                "STARTTLS (a server that upgrades the connection, port 587) or only TLS (a "
                "server that speaks TLS from the start, port 465)"
            )
        if self.ca_file is not None and not self.encrypted:
            raise ValueError(
                f"{ENV_PREFIX}CA_FILE is set, but mail would go in clear: set "
                f"{ENV_PREFIX}STARTTLS or {ENV_PREFIX}TLS too"
            )
        return self

    @property
    def encrypted(self) -> bool:
        return self.starttls or self.tls


def _problem(problem: ErrorDetails) -> str:
    """One of pydantic's problems, in words naming its variable (a check of several
    settings names them in its own words)."""
    message = problem["msg"].removeprefix("Value error, ")
    if not problem["loc"]:
        return message
    name = str(problem["loc"][0]).upper()
    return f"{name if name.startswith('GRAPHQL_API_') else ENV_PREFIX + name}: {message}"


@functools.cache
def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """One verifying TLS context per bundle (None: the system's CAs), made once: loading
    CAs costs more than a connection does."""
    return ssl.create_default_context(cafile=ca_file)


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
    domain = settings.sender.rpartition("@")[2] or "graphql-api"
    if event.type in PORTAL_MAILS:
        subject, text = PORTAL_MAILS[event.type]
        data = event.data
        body = text.format(
            name=data["name"],
            url=settings.portal_url.rstrip("/"),
            token=data["token"],
            expires=data["expiresAt"][:16].replace("T", " ") + " UTC",
        )
        message_id = f"<delivery-{delivery_id}@{domain}>"
        mail = _message(settings, message_id, data["email"], subject, body, None)
        await _send(settings, [mail])
        return
    await _send(settings, await _welcomes(event, session, settings, domain))


Mail = tuple[EmailMessage, str]
"""A message and its text (what catching logs)."""


async def _welcomes(
    event: Event, session: AsyncSession, settings: SmtpSettings, domain: str
) -> list[Mail]:
    """The group's template rendered for each new member of ``event`` with an e-mail
    address, in the event's order; ``SkipDelivery`` when there is nobody to mail."""
    group_data = event.data["group"]
    if not group_data["email_on_new_member"] or group_data["new_member_email_template_id"] is None:
        raise SkipDelivery("the group does not e-mail new members")
    contact_ids: Sequence[int] = event.data["contactIds"]
    found = {
        contact.id: contact
        for contact in await session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
    }
    recipients = [found[pk] for pk in contact_ids if pk in found and found[pk].email]
    if len(recipients) < len(contact_ids):
        without = sum(1 for pk in contact_ids if pk in found and not found[pk].email)
        gone = len(contact_ids) - len(found)
        unmailed = ", ".join(
            [f"{without} without an e-mail address"] * bool(without)
            + [f"{gone} no longer existing"] * bool(gone)
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
    group = await session.get(Group, group_data["id"])
    responsible = (
        await session.get(User, group.responsible_id) if group and group.responsible_id else None
    )
    mails = []
    # Every message is rendered before the first is sent: a template that fails for one
    # contact fails the attempt before anybody is mailed.
    for contact in recipients:
        fields = merge_fields(contact, group_data, group, responsible)
        rendered = await render(template.subject, template.body, fields)
        message_id = f"<event-{event.id}-contact-{contact.id}@{domain}>"
        mails.append(
            _message(
                settings, message_id, contact.email, rendered.subject, rendered.text, rendered.html
            )
        )
    return mails


def _message(
    settings: SmtpSettings, message_id: str, to: str, subject: str, text: str, html: str | None
) -> Mail:
    """One message; its Message-ID is the same on every retry."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.sender
    message["To"] = to
    message["Message-ID"] = message_id
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message, text


async def _send(settings: SmtpSettings, mails: Sequence[Mail]) -> None:
    """Send ``mails`` over up to ``settings.connections`` connections at once. A message
    refused for good is logged and left; any other failure fails the attempt, and so does
    the server refusing every message."""
    if settings.catch:
        for message, text in mails:
            logger.info(
                "E-mail caught, not sent: to %s, subject %r", message["To"], message["Subject"]
            )
            logger.debug("E-mail caught, its text:\n%s", text)
        return
    waiting: Iterator[Mail] = iter(mails)  # shared: each connection takes the next one
    refused: list[str] = []

    async def one_connection() -> None:
        async with aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            start_tls=settings.starttls,
            use_tls=settings.tls,
            tls_context=_tls_context(settings.ca_file) if settings.encrypted else None,
            timeout=settings.timeout_seconds,
        ) as smtp:
            for message, _ in waiting:
                try:
                    await smtp.send_message(message)
                except (
                    aiosmtplib.SMTPRecipientsRefused,
                    aiosmtplib.SMTPResponseException,
                ) as error:
                    if not _refused_for_good(error):
                        raise
                    refused.append(f"{message['To']}: {_one_line(error)}")
                except ValueError as error:  # an address that cannot be written in SMTP
                    refused.append(f"{message['To']}: {error}")

    try:
        async with asyncio.TaskGroup() as connections:
            for _ in range(min(settings.connections, len(mails))):
                connections.create_task(one_connection())
    except ExceptionGroup as failed:  # the first connection's failure is the attempt's
        raise _explained(settings, failed.exceptions[0]) from None
    if refused and len(refused) == len(mails):
        raise RuntimeError(f"the mail server refused every message, e.g. {refused[0]}")
    for reason in refused:
        logger.warning("E-mail refused by the mail server, not retried: %s", reason)


class UntrustedMailServer(Exception):
    """The mail server's certificate did not verify: nothing was sent to it."""


def _explained(settings: SmtpSettings, error: Exception) -> Exception:
    """A certificate that did not verify, in words naming the setting to look at (OpenSSL's
    own says neither the server nor which CAs were trusted); any other failure as it is."""
    verifying = error if isinstance(error, ssl.SSLCertVerificationError) else error.__cause__
    if not isinstance(verifying, ssl.SSLCertVerificationError):
        return error
    trusted = (
        f"the CAs in {ENV_PREFIX}CA_FILE ({settings.ca_file})"
        if settings.ca_file
        else f"the system's CAs ({ENV_PREFIX}CA_FILE is unset)"
    )
    return UntrustedMailServer(
        f"the certificate of the mail server {settings.host}:{settings.port} does not verify "
        f"against {trusted}: certificate verify failed: {verifying.verify_message.rstrip('.')}; "
        "nothing was sent"
    )


def _refused_for_good(error: Exception) -> bool:
    """A 5xx answer about this message (its sender, recipient or data), not the connection."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all(500 <= refusal.code < 600 for refusal in error.recipients)
    return isinstance(error, aiosmtplib.SMTPResponseException) and 500 <= error.code < 600


def _one_line(error: Exception) -> str:
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        error = error.recipients[0]
    code = getattr(error, "code", "")
    return " ".join(f"{code} {getattr(error, 'message', error)}".split())


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
