"""E-mails to new members through a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from email.message import Message
from typing import Any

import pytest
from smtp_testing import contacts, deliveries
from sqlalchemy import update

from graphql_api.notifications.models import Delivery
from graphql_api.plugin import decode_id
from graphql_api.testing import (
    GraphQLClient,
    add_members,
    deliver_all,
    make_worker,
    new_group_id,
    new_template_id,
    portal_client,
)

MESSAGE_ID = re.compile(r"<event-(\d+)-contact-(\d+)@zonnedael\.coop>")


def event_and_contact(message: Message) -> tuple[int, int]:
    """The event id and the contact id a welcome's Message-ID is made of."""
    match = MESSAGE_ID.fullmatch(message["Message-ID"])
    assert match, message["Message-ID"]
    return int(match[1]), int(match[2])


def pk(contact_id: str) -> int:
    return decode_id(contact_id, "Contact", ["contact_id"])


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
    text, html = (part.get_content() for part in anna.iter_parts())
    assert "Beste Anna," in text and "Groet, Johannes Frölich" in text
    assert "Nieuwsbrief &lt;Zon &amp; Wind&gt;" in html, "values are escaped in the HTML part"
    # The three joined in one event, one delivery: Cor, without an address, is left out.
    [(event_id, _)] = {event_and_contact(m) for m in inbox.messages if m is anna}
    assert sorted(event_and_contact(m) for m in inbox.messages) == [
        (event_id, pk(people[0])),
        (event_id, pk(people[1])),
    ]
    assert await deliveries(client) == [("DELIVERED", None)]


async def test_an_smtp_outage_loses_nothing_and_sends_nothing_twice(setup: Any, smtp: Any):
    app, client, group = setup
    inbox, server = smtp
    server.stop()
    people = await contacts(client, *[(f"Lid{i}", f"lid{i}@example.nl") for i in range(5)])
    await add_members(client, group, people)
    await make_worker(app).run_once()
    [(status, error)] = await deliveries(client)  # one event: the five joined at once
    assert status == "FAILED" and "Connect" in (error or ""), error
    assert inbox.messages == []

    server.start()
    async with app.state.sessions() as session, session.begin():
        await session.execute(update(Delivery).values(next_attempt_at=Delivery.created_at))
    await make_worker(app).run_until_idle()
    assert Counter(m["To"] for m in inbox.messages) == Counter(
        f"lid{i}@example.nl" for i in range(5)
    )
    assert len({m["Message-ID"] for m in inbox.messages}) == 5
    assert await deliveries(client) == [("DELIVERED", None)]


async def test_a_worker_crash_loses_no_mail_and_doubles_none(setup: Any, smtp: Any):
    app, client, group = setup
    inbox, _ = smtp
    people = await contacts(client, *[(f"Lid{i}", f"lid{i}@example.nl") for i in range(3)])
    await add_members(client, group, people)
    assert len(await make_worker(app)._claim()) == 1  # claimed, then the worker process died
    assert await make_worker(app).run_until_idle() == 0, "still leased to the dead worker"
    async with app.state.sessions() as session, session.begin():
        await session.execute(update(Delivery).values(lease_until=Delivery.created_at))
    await make_worker(app).run_until_idle()
    assert sorted(m["To"] for m in inbox.messages) == [f"lid{i}@example.nl" for i in range(3)]


async def test_one_event_of_many_new_members_mails_each_once_over_few_connections(
    setup: Any, smtp: Any
):
    app, client, group = setup
    inbox, _ = smtp
    people = await contacts(client, *[(f"Lid{i}", f"lid{i}@example.nl") for i in range(20)])
    await add_members(client, group, people)
    assert await make_worker(app).run_until_idle() == 1, "one event, one delivery"
    assert sorted(m["To"] for m in inbox.messages) == sorted(
        f"lid{i}@example.nl" for i in range(20)
    )
    ids = [event_and_contact(m) for m in inbox.messages]
    assert len({event for event, _ in ids}) == 1
    assert sorted(contact for _, contact in ids) == sorted(pk(p) for p in people)
    assert all(m["Subject"] == "Welkom bij Nieuwsbrief <Zon & Wind>" for m in inbox.messages)
    texts = {m["To"]: m.get_body(("plain",)).get_content() for m in inbox.messages}
    assert all(f"Beste Lid{i}," in texts[f"lid{i}@example.nl"] for i in range(20))
    assert len(set(inbox.connections)) == 2, "GRAPHQL_API_SMTP_CONNECTIONS: 2 at once"
    assert await deliveries(client) == [("DELIVERED", None)]


async def test_a_group_without_email_on_new_member_mails_nobody(setup: Any, smtp: Any):
    app, client, _ = setup
    inbox, _ = smtp
    quiet = await new_group_id(client, name="Stille groep")
    people = await contacts(client, ("Anna", "anna@example.nl"), ("Bram", "bram@example.nl"))
    await add_members(client, quiet, people)
    assert await make_worker(app).run_until_idle() == 1
    assert inbox.messages == []
    assert await deliveries(client) == [("SKIPPED", "the group does not e-mail new members")]


async def test_a_group_with_members_none_of_whom_can_be_mailed_is_skipped(setup: Any, smtp: Any):
    app, client, group = setup
    inbox, _ = smtp
    people = await contacts(client, ("Anna", None), ("Bram", None))
    await add_members(client, group, people)
    await make_worker(app).run_until_idle()
    assert inbox.messages == []
    assert await deliveries(client) == [
        ("SKIPPED", "no new member to e-mail (2 without an e-mail address)")
    ]


async def test_a_new_member_who_opted_out_of_the_groups_mail_gets_no_welcome(setup: Any, smtp: Any):
    app, client, group = setup
    inbox, _ = smtp
    anna, bram = await contacts(client, ("Anna", "anna@example.nl"), ("Bram", "bram@example.nl"))
    opted = await client.data(
        "mutation($c: ID!, $g: ID!) { optContactOutOfMail(contactId: $c, groupId: $g) "
        "{ errors { code } } }",
        {"c": anna, "g": group},
    )
    assert opted["optContactOutOfMail"]["errors"] == []
    await add_members(client, group, [anna, bram])
    await make_worker(app).run_until_idle()
    assert [m["To"] for m in inbox.messages] == ["bram@example.nl"]
    # Leaving and joining again: still opted out, still no welcome.
    await client.data(
        "mutation($c: ID!, $g: ID!) { removeGroupMembers(groupId: $g, contactIds: [$c]) "
        "{ errors { code } } }",
        {"c": anna, "g": group},
    )
    await add_members(client, group, [anna])
    await make_worker(app).run_until_idle()
    assert len(inbox.messages) == 1
    assert ("SKIPPED", "no new member to e-mail (1 opted out of the group's mail)") in (
        await deliveries(client)
    )


@pytest.mark.parametrize("smtp_options", [{"enable_SMTPUTF8": True}])
async def test_an_address_beyond_ascii_is_mailed_with_smtputf8(setup: Any, smtp: Any):
    app, client, group = setup
    inbox, _ = smtp
    people = await contacts(client, ("Zoë", "zoë@example.nl"), ("Bram", "bram@example.nl"))
    await add_members(client, group, people)
    await make_worker(app).run_until_idle()
    assert sorted(m["To"] for m in inbox.messages) == ["bram@example.nl", "zoë@example.nl"]
    assert await deliveries(client) == [("DELIVERED", None)]


@pytest.mark.parametrize("smtp_options", [{"enable_SMTPUTF8": False}])
async def test_a_server_without_smtputf8_refuses_only_that_address(setup: Any, smtp: Any):
    app, client, group = setup
    inbox, _ = smtp
    people = await contacts(client, ("Zoë", "zoë@example.nl"), ("Bram", "bram@example.nl"))
    await add_members(client, group, people)
    await make_worker(app).run_until_idle()
    assert [m["To"] for m in inbox.messages] == ["bram@example.nl"]
    assert await deliveries(client) == [("DELIVERED", None)]


@pytest.fixture
def one_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """``GRAPHQL_API_SMTP_CONNECTIONS=1``: an event's mails go out one after the other."""
    monkeypatch.setenv("GRAPHQL_API_SMTP_CONNECTIONS", "1")


async def test_a_retry_sends_the_whole_event_again_under_the_same_message_ids(
    one_connection: None, setup: Any, smtp: Any
):
    """At least once, per event: the plugin keeps no table, so what a failed attempt sent
    goes out again, with the same Message-ID (a receiver can tell the repeat)."""
    app, client, group = setup
    inbox, _ = smtp
    people = await contacts(
        client, ("Anna", "anna@example.nl"), ("Bram", "bram@example.nl"), ("Cor", "cor@example.nl")
    )
    inbox.refusing["bram@example.nl"] = "451 4.3.0 try again later"
    await add_members(client, group, people)
    await make_worker(app).run_once()
    [(status, error)] = await deliveries(client)
    assert status == "FAILED" and "451" in (error or ""), error
    assert [m["To"] for m in inbox.messages] == ["anna@example.nl"], "sent before Bram's"
    first_anna = inbox.messages[0]["Message-ID"]

    del inbox.refusing["bram@example.nl"]
    async with app.state.sessions() as session, session.begin():
        await session.execute(update(Delivery).values(next_attempt_at=Delivery.created_at))
    await make_worker(app).run_until_idle()
    assert Counter(m["To"] for m in inbox.messages) == Counter(
        {"anna@example.nl": 2, "bram@example.nl": 1, "cor@example.nl": 1}
    )
    assert [m["Message-ID"] for m in inbox.messages if m["To"] == "anna@example.nl"] == [
        first_anna,
        first_anna,
    ]
    assert len({m["Message-ID"] for m in inbox.messages}) == 3, "one Message-ID per mail"
    assert await deliveries(client) == [("DELIVERED", None)]


async def test_an_address_refused_for_good_does_not_repeat_the_others(
    setup: Any, smtp: Any, caplog: pytest.LogCaptureFixture
):
    app, client, group = setup
    inbox, _ = smtp
    people = await contacts(
        client, ("Anna", "anna@example.nl"), ("Bram", "bram@example.nl"), ("Cor", "cor@example.nl")
    )
    inbox.refusing["bram@example.nl"] = "550 5.1.1 no such user"
    await add_members(client, group, people)
    with caplog.at_level(logging.WARNING, logger="graphql_api_email_notifications"):
        await make_worker(app).run_until_idle()
    assert sorted(m["To"] for m in inbox.messages) == ["anna@example.nl", "cor@example.nl"]
    assert await deliveries(client) == [("DELIVERED", None)]
    said = [r.getMessage() for r in caplog.records if r.name == "graphql_api_email_notifications"]
    assert said == [
        "E-mail refused by the mail server, not retried: bram@example.nl: 550 5.1.1 no such user"
    ]

    # Refusing every message of an event is no bad address but a bad setup: it fails.
    [dirk] = await contacts(client, ("Dirk", "dirk@example.nl"))
    inbox.refusing["dirk@example.nl"] = "550 5.7.1 relaying denied"
    await add_members(client, group, [dirk])
    await make_worker(app).run_once()
    data = await client.data("{ notificationDeliveries(status: FAILED) { nodes { lastError } } }")
    assert data["notificationDeliveries"]["nodes"] == [
        {
            "lastError": "RuntimeError: the mail server refused every message, e.g. "
            "dirk@example.nl: 550 5.7.1 relaying denied"
        }
    ]


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
