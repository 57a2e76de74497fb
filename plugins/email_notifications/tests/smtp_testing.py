"""What the e-mail plugin's tests share: a real SMTP server on loopback (aiosmtpd) keeping
what it receives, and helpers that set up contacts and read deliveries through the API."""

from __future__ import annotations

import email
import email.policy
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from graphql_api.testing import GraphQLClient, new_contact_id


def tls_version(server: Any) -> str | None:
    """The TLS version of the connection ``server`` (aiosmtpd's) speaks over, or None in
    clear: implicit TLS and STARTTLS alike."""
    ssl_object = server.transport.get_extra_info("ssl_object")
    return ssl_object.version() if ssl_object is not None else None


class Inbox:
    """An SMTP handler keeping every message it receives, the connection each came over and
    whether that was TLS; it answers ``refusing[address]`` (an SMTP reply) to that recipient
    instead. ``senders`` has each MAIL FROM (the first thing a mail reveals) and its TLS."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.connections: list[Any] = []
        self.tls: list[str | None] = []
        self.senders: list[tuple[str, str | None]] = []
        self.refusing: dict[str, str] = {}

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        self.senders.append((address, tls_version(server)))
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refusing:
            return self.refusing[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        self.connections.append(session.peer)
        self.tls.append(tls_version(server))
        return "250 OK"


class SmtpServer:
    """A real SMTP server on loopback that can go down and come back on the same port, with
    aiosmtpd's ``Controller`` ``options`` (its TLS) of the moment."""

    def __init__(self, inbox: Inbox, port: int, options: dict[str, Any]) -> None:
        self.inbox, self.port, self.options = inbox, port, options
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(
            self.inbox, hostname="127.0.0.1", port=self.port, **self.options
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop(no_assert=True)
            self.controller = None


async def contacts(client: GraphQLClient, *people: tuple[str, str | None]) -> list[str]:
    """One contact "<first name> Test" per (first name, e-mail address or None); their ids."""
    return [
        await new_contact_id(client, firstName=first, lastName="Test", email=address)
        for first, address in people
    ]


async def deliveries(client: GraphQLClient) -> list[tuple[str, str | None]]:
    """``(status, lastError)`` of every delivery."""
    data = await client.data("{ notificationDeliveries { nodes { status lastError } } }")
    return [(n["status"], n["lastError"]) for n in data["notificationDeliveries"]["nodes"]]
