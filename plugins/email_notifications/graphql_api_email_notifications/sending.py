"""Sending over SMTP: the plugin's settings, its TLS, and batches of messages over a few
reused connections, at a limited rate.

Every mail of the plugin (welcomes, the portal's mails, group mails) goes out through
``send_each``: the batch is shared by up to ``connections`` SMTP connections, each taking
the next message when it is done with one, so a batch costs a few connections, not one
per message. A message the server refuses for good (a 5xx answer about its sender,
recipient or data) is answered with the server's words and the rest go on; any other
failure (the connection, a timeout, a 4xx, a certificate that does not verify) fails the
whole batch, for the caller to retry it.

Over TLS the server's certificate is always verified: a certificate that does not verify
fails the attempt before anything is sent, and no mail goes out in clear instead.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import logging
import secrets
import ssl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.header import Header
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiosmtplib
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger("graphql_api_email_notifications")

ENV_PREFIX = "GRAPHQL_API_SMTP_"


class SmtpSettings(BaseSettings):
    """The plugin's settings (``GRAPHQL_API_SMTP_*``, and the portal's and the public URL)."""

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
    """How many SMTP connections one batch of mails (an event's welcomes, a chunk of a
    group mail) is sent over at once."""
    rate: float = Field(100.0, ge=0)
    """Group mails: at most this many mails per second from one process (a token bucket
    with a second's worth of burst); 0 for no limit."""
    group_mail_chunk: int = Field(
        100, ge=1, le=2_000, validation_alias="GRAPHQL_API_GROUP_MAIL_CHUNK_SIZE"
    )
    """Group mails: recipients per chunk of the job, each chunk one transaction. A worker
    killed while it sends a chunk sends that chunk's mails again when the job resumes, so
    this is also the most mails one such kill can repeat."""
    public_url: str = Field("http://127.0.0.1:8000", validation_alias="GRAPHQL_API_PUBLIC_URL")
    """Where this service is reached from the internet: unsubscribe links point there."""
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

    @property
    def domain(self) -> str:
        """The sender's domain: the right-hand side of every Message-ID."""
        return self.sender.rpartition("@")[2] or "graphql-api"


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


@dataclass(frozen=True)
class Mail:
    """One message to send, as the bytes SMTP's DATA carries, with its recipient and
    subject (what catching logs) and its text (logged at DEBUG)."""

    to: str
    subject: str
    data: bytes
    text: str
    utf8: bool = False
    """Whether an address is not plain ASCII (``zoë@example.nl``): then the message is
    UTF-8 and goes with SMTPUTF8 (RFC 6531), to a server that offers it."""


def message(
    settings: SmtpSettings,
    message_id: str,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    headers: dict[str, str] | None = None,
) -> Mail:
    """One message, text and (when given) HTML as alternatives; its Message-ID is the
    caller's, the same on every retry.

    Written directly as MIME: Python's ``email`` package takes some milliseconds to
    build and flatten a message, which capped a worker at about a hundred mails a second;
    this takes some tens of microseconds. The text parts are quoted-printable UTF-8 (7-bit
    safe, readable), the subject an RFC 2047 encoded word when it is not plain ASCII."""
    lines = [
        f"From: {settings.sender}",
        f"To: {to}",
        _header("Subject", subject),
        f"Date: {formatdate(usegmt=True)}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        *(_header(name, value) for name, value in (headers or {}).items()),
    ]
    if html is None:
        lines += [*_part_headers("plain"), "", _quoted(text)]
    else:
        boundary = f"=_groepen_{secrets.token_hex(12)}"
        lines += [
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            f"--{boundary}",
            *_part_headers("plain"),
            "",
            _quoted(text),
            f"--{boundary}",
            *_part_headers("html"),
            "",
            _quoted(html),
            f"--{boundary}--",
        ]
    utf8 = not (to.isascii() and settings.sender.isascii())
    data = "\n".join(lines).encode("utf-8" if utf8 else "ascii")
    return Mail(to=to, subject=subject, data=data, text=text, utf8=utf8)


def _header(name: str, value: str) -> str:
    """``Name: value``, encoded (RFC 2047) and folded when the value is not plain ASCII;
    line breaks in a value never start a header of their own. A plain value (a link, a
    subject) stays on one line, as long as SMTP allows."""
    value = " ".join(value.split())
    if value.isascii() and len(name) + len(value) < 990:
        return f"{name}: {value}"
    return f"{name}: {Header(value, 'utf-8', header_name=name).encode()}"


def _part_headers(subtype: str) -> list[str]:
    return [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
    ]


def _quoted(text: str) -> str:
    """``text`` as quoted-printable UTF-8, lines of at most 76 characters."""
    plain = text.replace("\r\n", "\n").replace("\r", "\n")
    return binascii.b2a_qp(plain.encode("utf-8")).decode("ascii")


class TokenBucket:
    """At most ``rate`` takes a second on average, with a burst of a second's worth: a
    take that finds the bucket empty reserves its token and waits for it, so concurrent
    takers (a batch's connections) queue fairly without a lock."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.at = time.monotonic()

    async def take(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= 1
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


_BUCKETS: dict[float, TokenBucket] = {}


def bucket(rate: float) -> TokenBucket | None:
    """The process's bucket for ``rate`` mails a second (None: no limit), shared by every
    job and chunk of this process, so the limit holds for the process as a whole."""
    if rate <= 0:
        return None
    return _BUCKETS.setdefault(rate, TokenBucket(rate))


async def send_each(
    settings: SmtpSettings, mails: Sequence[Mail], limit: TokenBucket | None = None
) -> list[str | None]:
    """Send ``mails`` over up to ``settings.connections`` connections at once, each taking
    a token from ``limit`` (if any) before a message. Answers, in order, None for a
    message sent and the server's reason for one refused for good; raises on any other
    failure (nothing is known then of which went out)."""
    outcome: list[str | None] = [None] * len(mails)
    if settings.catch:
        for mail in mails:
            logger.info("E-mail caught, not sent: to %s, subject %r", mail.to, mail.subject)
            logger.debug("E-mail caught, its text:\n%s", mail.text)
        return outcome
    waiting: Iterator[tuple[int, Mail]] = iter(enumerate(mails))  # shared by the connections

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
            for index, mail in waiting:
                if limit is not None:
                    await limit.take()
                try:
                    await smtp.sendmail(
                        settings.sender,
                        [mail.to],
                        mail.data,
                        mail_options=["SMTPUTF8"] if mail.utf8 else None,
                    )
                except (
                    aiosmtplib.SMTPRecipientsRefused,
                    aiosmtplib.SMTPResponseException,
                ) as error:
                    if not _refused_for_good(error):
                        raise
                    outcome[index] = _one_line(error)
                except (ValueError, aiosmtplib.SMTPNotSupported) as error:
                    # An address that cannot be written in SMTP (or not to this server).
                    outcome[index] = str(error)

    try:
        async with asyncio.TaskGroup() as connections:
            for _ in range(min(settings.connections, len(mails))):
                connections.create_task(one_connection())
    except ExceptionGroup as failed:  # the first connection's failure is the batch's
        raise explained(settings, failed.exceptions[0]) from None
    return outcome


async def send(settings: SmtpSettings, mails: Sequence[Mail]) -> None:
    """Send ``mails`` as one attempt of a delivery: a message refused for good is logged
    and left; any other failure fails the attempt, and so does the server refusing every
    message (a bad setup rather than a bad address)."""
    outcome = await send_each(settings, mails)
    refused = [
        f"{mail.to}: {reason}" for mail, reason in zip(mails, outcome, strict=True) if reason
    ]
    if refused and len(refused) == len(mails):
        raise RuntimeError(f"the mail server refused every message, e.g. {refused[0]}")
    for reason in refused:
        logger.warning("E-mail refused by the mail server, not retried: %s", reason)


class UntrustedMailServer(Exception):
    """The mail server's certificate did not verify: nothing was sent to it."""


def explained(settings: SmtpSettings, error: BaseException) -> BaseException:
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
