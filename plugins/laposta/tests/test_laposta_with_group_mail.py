"""The two mail plugins together, as a cooperative runs them: an unsubscribe on Laposta,
arriving by webhook, leaves the contact out of the group's next group mail (the e-mail
plugin), which counts them as opted out; and the group mail's own unsubscribe link marks
them unsubscribed on the list. A real SMTP server on loopback (aiosmtpd) takes the mail."""

from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from email.message import Message
from typing import Any

import graphql_api_email_notifications
import graphql_api_laposta
import httpx
import pytest
from aiosmtpd.controller import Controller
from laposta_standin import LapostaStandIn
from laposta_testing import WEBHOOK_SECRET

from graphql_api.testing import (
    GraphQLClient,
    add_members,
    deliver_all,
    free_port,
    make_user,
    new_contact_id,
    new_group_id,
    run_jobs,
)

SEND = """mutation($g: ID!) { sendGroupMail(input: {groupId: $g, subject: "Nieuws",
  body: "Beste {{ contact.firstName }}"}) { groupMail { id } errors { code message } } }"""
COUNTS = """query($m: ID!) { groupMail(id: $m) { counts { sent skipped total }
  recipients(state: SKIPPED) { nodes { contact { lastName } reason } } } }"""
LINK = """mutation($g: ID!, $l: String!) { linkMailingList(groupId: $g, listId: $l) {
  errors { code message } } }"""


class Inbox:
    """Keeps every message the SMTP server takes."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    kept = Inbox()
    port = free_port()
    controller = Controller(kept, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("GRAPHQL_API_SMTP_PORT", str(port))
    monkeypatch.setenv("GRAPHQL_API_SMTP_FROM", "groepen@zonnedael.coop")
    monkeypatch.setenv("GRAPHQL_API_PUBLIC_URL", "http://t")
    yield kept
    controller.stop()


@pytest.fixture
async def both(
    app_factory: Any, standin: LapostaStandIn, inbox: Inbox
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, GraphQLClient]]:
    app = app_factory(
        plugins=[graphql_api_laposta, graphql_api_email_notifications],
        outbox_retry_base_seconds=0,
        strict_plugins=True,
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    yield app, http, GraphQLClient(http, token)
    await http.aclose()


async def settle(app: Any) -> None:
    for _ in range(3):
        await run_jobs(app)
        await deliver_all(app)


async def test_a_laposta_unsubscribe_leaves_the_contact_out_of_the_next_group_mail(
    both: Any, standin: LapostaStandIn, inbox: Inbox
):
    app, http, client = both
    anna = await new_contact_id(client, firstName="Anna", lastName="Jansen", email="anna@zon.coop")
    bram = await new_contact_id(client, firstName="Bram", lastName="Bakker", email="bram@zon.coop")
    group = await new_group_id(client, name="Nieuwsbrief")
    await add_members(client, group, [anna, bram])
    list_id = standin.new_list()
    assert (await client.data(LINK, {"g": group, "l": list_id}))["linkMailingList"]["errors"] == []
    await settle(app)

    # Anna unsubscribes through a Laposta newsletter; Laposta tells us by webhook.
    member_id = standin.active(list_id)["anna@zon.coop"]["member_id"]
    standin.lists[list_id][member_id]["state"] = "unsubscribed"
    hook = await standin.post_webhook(
        http,
        f"/plugins/laposta/webhook?secret={WEBHOOK_SECRET}",
        standin.webhook_body(list_id, member_id),
    )
    assert hook.status_code == 200, hook.text

    sent = (await client.data(SEND, {"g": group}))["sendGroupMail"]
    assert sent["errors"] == []
    await settle(app)
    assert [m["To"] for m in inbox.messages] == ["bram@zon.coop"]
    mail = (await client.data(COUNTS, {"m": sent["groupMail"]["id"]}))["groupMail"]
    assert mail["counts"] == {"sent": 1, "skipped": 1, "total": 2}
    [skipped] = mail["recipients"]["nodes"]
    assert skipped["contact"]["lastName"] == "Jansen" and "opted out" in skipped["reason"]

    # Bram unsubscribes with the group mail's own link (RFC 8058 one-click): the list
    # marks him unsubscribed too.
    [message] = inbox.messages
    link = message["List-Unsubscribe"].strip("<>")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    clicked = await http.post(link, content=b"List-Unsubscribe=One-Click")
    assert clicked.status_code == 200, clicked.text
    await settle(app)
    bram_member = next(m for m in standin.lists[list_id].values() if m["email"] == "bram@zon.coop")
    assert bram_member["state"] == "unsubscribed"
    shown = await client.data(
        "query($c: ID!) { contact(id: $c) { mailOptOuts { groupName source } } }", {"c": bram}
    )
    assert shown["contact"]["mailOptOuts"] == [
        {"groupName": "Nieuwsbrief", "source": "UNSUBSCRIBE_LINK"}
    ]
