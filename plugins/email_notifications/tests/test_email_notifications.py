"""E-mails to new members through a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
from collections import Counter
from collections.abc import Iterator
from email.message import Message
from typing import Any

import graphql_api_email_notifications
import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import update

from graphql_api.notifications.models import Delivery
from graphql_api.testing import (
    GraphQLClient,
    add_members,
    deliver_all,
    first_user_id,
    free_port,
    make_user,
    make_worker,
    new_contact_id,
    new_group_id,
    new_template_id,
    portal_client,
)


class Inbox:
    """An SMTP handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"


class SmtpServer:
    """A real SMTP server on loopback that can go down and come back on the same port."""

    def __init__(self, inbox: Inbox, port: int) -> None:
        self.inbox, self.port = inbox, port
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop(no_assert=True)
            self.controller = None


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Inbox, SmtpServer]]:
    inbox = Inbox()
    server = SmtpServer(inbox, free_port())
    server.start()
    monkeypatch.setenv("GRAPHQL_API_SMTP_PORT", str(server.port))
    monkeypatch.setenv("GRAPHQL_API_SMTP_FROM", "groepen@zonnedael.coop")
    yield inbox, server
    server.stop()


@pytest.fixture
async def setup(app_factory: Any, smtp: Any) -> Any:
    app = app_factory(plugins=[graphql_api_email_notifications], outbox_retry_base_seconds=0)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    client = GraphQLClient(http, token)
    template = await new_template_id(
        client,
        subject="Welkom bij {{ group.name }}",
        body="Beste {{ contact.firstName }},\n\nWelkom bij {{ group.name }}. Groet, {{ group.responsible.name }}",
    )
    group = await new_group_id(
        client,
        name="Nieuwsbrief <Zon & Wind>",
        responsibleId=await first_user_id(client),
        emailOnNewMember=True,
        newMemberEmailTemplateId=template,
    )
    yield app, client, group
    await http.aclose()


async def contacts(client: GraphQLClient, *people: tuple[str, str | None]) -> list[str]:
    """One contact "<first name> Test" per (first name, e-mail address or None); their ids."""
    return [
        await new_contact_id(client, firstName=first, lastName="Test", email=address)
        for first, address in people
    ]


async def test_each_new_member_gets_the_template(setup: Any, smtp: Any):
    app, client, group = setup
    inbox, _ = smtp
    people = await contacts(
        client, ("Anna", "anna@example.nl"), ("Bram", "bram@example.nl"), ("Cor", None)
    )
    await add_members(client, group, people)
    await add_members(client, group, people[:1])  # already a member: no second mail
    await make_worker(app).run_until_idle()

    assert sorted(m["To"] for m in inbox.messages) == ["anna@example.nl", "bram@example.nl"]
    anna = next(m for m in inbox.messages if m["To"] == "anna@example.nl")
    assert anna["Subject"] == "Welkom bij Nieuwsbrief <Zon & Wind>"
    assert anna["From"] == "groepen@zonnedael.coop"
    assert anna["Message-ID"].startswith("<delivery-") and anna["Message-ID"].endswith(
        "@zonnedael.coop>"
    )
    text, html = (part.get_content() for part in anna.iter_parts())
    assert "Beste Anna," in text and "Groet, Johannes Frölich" in text
    assert "Nieuwsbrief &lt;Zon &amp; Wind&gt;" in html, "values are escaped in the HTML part"
    data = await client.data("{ notificationDeliveries(status: SKIPPED) { nodes { lastError } } }")
    assert data["notificationDeliveries"]["nodes"] == [
        {"lastError": "the contact has no e-mail address"}
    ]


async def test_an_smtp_outage_loses_nothing_and_sends_nothing_twice(setup: Any, smtp: Any):
    app, client, group = setup
    inbox, server = smtp
    server.stop()
    people = await contacts(client, *[(f"Lid{i}", f"lid{i}@example.nl") for i in range(5)])
    await add_members(client, group, people)
    await make_worker(app).run_once()
    data = await client.data(
        "{ notificationDeliveries(status: FAILED) { totalCount nodes { lastError } } }"
    )
    assert data["notificationDeliveries"]["totalCount"] == 5
    assert inbox.messages == []

    server.start()
    async with app.state.sessions() as session, session.begin():
        await session.execute(update(Delivery).values(next_attempt_at=Delivery.created_at))
    await make_worker(app).run_until_idle()
    assert Counter(m["To"] for m in inbox.messages) == Counter(
        f"lid{i}@example.nl" for i in range(5)
    )
    assert len({m["Message-ID"] for m in inbox.messages}) == 5
    data = await client.data("{ notificationDeliveries(status: DELIVERED) { totalCount } }")
    assert data["notificationDeliveries"]["totalCount"] == 5


async def test_a_worker_crash_loses_no_mail_and_doubles_none(setup: Any, smtp: Any):
    app, client, group = setup
    inbox, _ = smtp
    people = await contacts(client, *[(f"Lid{i}", f"lid{i}@example.nl") for i in range(3)])
    await add_members(client, group, people)
    assert len(await make_worker(app)._claim()) == 3  # claimed, then the worker process died
    assert await make_worker(app).run_until_idle() == 0, "still leased to the dead worker"
    async with app.state.sessions() as session, session.begin():
        await session.execute(update(Delivery).values(lease_until=Delivery.created_at))
    await make_worker(app).run_until_idle()
    assert sorted(m["To"] for m in inbox.messages) == [f"lid{i}@example.nl" for i in range(3)]


async def test_the_service_delivers_in_process(setup: Any, smtp: Any):
    app, client, group = setup
    inbox, _ = smtp
    [anna] = await contacts(client, ("Anna", "anna@example.nl"))
    async with app.router.lifespan_context(app):
        await add_members(client, group, [anna])
        for _ in range(100):
            if inbox.messages:
                break
            await asyncio.sleep(0.05)
    assert [m["To"] for m in inbox.messages] == ["anna@example.nl"]


async def test_portal_invitation_reset_and_a_portal_join_are_mailed(setup: Any, smtp: Any):
    app, client, group = setup
    inbox, _ = smtp
    await client.data(
        "mutation($g: ID!) { updateGroup(id: $g, input: {showOnPortal: true, editableOnPortal: true}) { errors { code } } }",
        {"g": group},
    )
    [anna] = await contacts(client, ("Anna", "anna@zon.nl"))
    portal = await portal_client(client, anna)
    await deliver_all(app)
    [invitation] = inbox.messages
    assert invitation["To"] == "anna@zon.nl"
    assert invitation["Subject"] == "Uw uitnodiging voor het klantenportaal"
    assert "/accept?token=gpl_" in invitation.get_content()

    joined = await portal.data(
        "mutation($g: ID!) { joinGroup(groupId: $g) { errors { code } } }", {"g": group}
    )
    assert joined["joinGroup"]["errors"] == []
    await portal.data(
        "mutation($g: ID!) { joinGroup(groupId: $g) { errors { code } } }", {"g": group}
    )
    anonymous = GraphQLClient(client.http, None, path="/portal/graphql")
    await anonymous.data('mutation { requestPasswordReset(email: "anna@zon.nl") { ok } }')
    await deliver_all(app)
    subjects = Counter(message["Subject"] for message in inbox.messages)
    assert subjects == Counter(
        {
            "Uw uitnodiging voor het klantenportaal": 1,
            "Welkom bij Nieuwsbrief <Zon & Wind>": 1,
            "Nieuw wachtwoord voor het klantenportaal": 1,
        }
    ), "one welcome, however often the contact presses join"
    reset = next(m for m in inbox.messages if m["Subject"].startswith("Nieuw"))
    assert "/reset?token=gpl_" in reset.get_content()


async def test_a_contact_whose_edit_matches_a_dynamic_group_is_mailed_once(setup: Any, smtp: Any):
    app, client, _ = setup
    inbox, _ = smtp
    template = await new_template_id(
        client, name="Zwolle welkom", subject="Welkom in {{ group.name }}", body="Hallo!"
    )
    [anna, bram] = await contacts(client, ("Anna", "anna@zon.nl"), ("Bram", "bram@wind.nl"))
    await client.data(
        'mutation($c: ID!) { updateContact(id: $c, input: {city: "Zwolle"}) { errors { code } } }',
        {"c": bram},
    )
    await new_group_id(
        client,
        name="Zwolle",
        filter={"condition": {"field": "city", "op": "EQ", "value": "Zwolle"}},
        emailOnNewMember=True,
        newMemberEmailTemplateId=template,
    )
    await deliver_all(app)
    assert [m["To"] for m in inbox.messages] == ["bram@wind.nl"], "a member from the start"
    inbox.messages.clear()
    move = "mutation($c: ID!, $city: String) { updateContact(id: $c, input: {city: $city}) { errors { code } } }"
    await client.data(move, {"c": anna, "city": "Zwolle"})
    await client.data(move, {"c": bram, "city": "Zwolle"})  # already a member: no mail
    await client.data(move, {"c": anna, "city": "zwolle"})  # still matching: no second mail
    await deliver_all(app)
    assert [(m["To"], m["Subject"]) for m in inbox.messages] == [
        ("anna@zon.nl", "Welkom in Zwolle")
    ]
    history = await client.data(
        "{ groups(filter: {kind: DYNAMIC}) { nodes { history(first: 5) { nodes { action source cause } } } } }"
    )
    [group] = history["groups"]["nodes"]
    newest = group["history"]["nodes"][0]
    assert newest["source"] == "DERIVED" and newest["action"] == "ADDED"
    assert "city changed" in newest["cause"]


@pytest.fixture
def catching(monkeypatch: pytest.MonkeyPatch) -> None:
    """``GRAPHQL_API_SMTP_CATCH=true``, set before the app (which reads it) is made."""
    monkeypatch.setenv("GRAPHQL_API_SMTP_CATCH", "true")


async def test_caught_mail_is_logged_not_sent(
    catching: None, setup: Any, smtp: Any, caplog: pytest.LogCaptureFixture
):
    app, client, group = setup
    inbox, server = smtp
    server.stop()  # nothing listens: only catching delivers
    [anna] = await contacts(client, ("Anna", "anna@example.nl"))
    await add_members(client, group, [anna])
    with caplog.at_level(logging.DEBUG, logger="graphql_api_email_notifications"):
        assert await make_worker(app).run_until_idle() == 1
    assert inbox.messages == []
    said = [r.getMessage() for r in caplog.records if r.name == "graphql_api_email_notifications"]
    assert said[0] == (
        "E-mail caught, not sent: to anna@example.nl, subject 'Welkom bij Nieuwsbrief <Zon & Wind>'"
    )
    assert "Beste Anna," in said[1]
    data = await client.data("{ notificationDeliveries(status: DELIVERED) { totalCount } }")
    assert data["notificationDeliveries"]["totalCount"] == 1
