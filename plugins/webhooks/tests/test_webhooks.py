"""Signed webhooks to a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from graphql_api.graphql_base.relay import parse_global_id
from graphql_api.notifications.models import Delivery
from graphql_api.testing import (
    GraphQLClient,
    add_members,
    make_user,
    make_worker,
    new_contact_id,
    new_contact_ids,
    new_group_id,
)

SECRET = "s3cret"


class Receiver(ThreadingHTTPServer):
    """Checks each request's signature; answers 500 while ``failing``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.received: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.bad_signatures = 0
        self.failing = False


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.headers["X-Webhook-Signature"]):
            self.server.bad_signatures += 1
        status = 500 if self.server.failing else 204
        if not self.server.failing:
            self.server.received.append((json.loads(body), dict(self.headers)))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("GRAPHQL_API_WEBHOOK_URLS", f"http://127.0.0.1:{server.server_port}/hook")
    monkeypatch.setenv("GRAPHQL_API_WEBHOOK_SECRET", SECRET)
    yield server
    server.shutdown()
    server.server_close()


async def test_events_arrive_signed_and_are_retried(app_factory: Any, receiver: Receiver):
    app = app_factory(outbox_retry_base_seconds=0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        _, token = await make_user(app, "Admin", "admin@example.coop", admin=True)
        client = GraphQLClient(http, token)
        group = await new_group_id(client, name="Webhookgroep")
        [anna] = await new_contact_ids(client, "Anna")
        receiver.failing = True
        await add_members(client, group, [anna])
        worker = make_worker(app)
        await worker.run_once()
        failed = await client.data(
            "{ notificationDeliveries(status: FAILED) { nodes { plugin lastError } } }"
        )
        webhook_failures = [
            n for n in failed["notificationDeliveries"]["nodes"] if n["plugin"] == "webhooks"
        ]
        assert webhook_failures and all("answered 500" in n["lastError"] for n in webhook_failures)

        receiver.failing = False
        async with app.state.sessions() as session, session.begin():
            await session.execute(update(Delivery).values(next_attempt_at=Delivery.created_at))
        await worker.run_until_idle()
    kinds = sorted(body["type"] for body, _ in receiver.received)
    assert kinds == ["group.created", "members.added"]
    assert receiver.bad_signatures == 0
    added = next(body for body, _ in receiver.received if body["type"] == "members.added")
    headers = next(h for b, h in receiver.received if b is added)
    assert headers["X-Webhook-Id"] == str(added["id"])
    assert added["data"]["group"]["name"] == "Webhookgroep" and added["occurredAt"]


async def test_a_bulk_add_is_one_signed_post_naming_every_contact(
    app_factory: Any, receiver: Receiver
):
    app = app_factory()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        _, token = await make_user(app, "Admin", "admin@example.coop", admin=True)
        client = GraphQLClient(http, token)
        group = await new_group_id(client, name="Zonnedak")
        people = await new_contact_ids(client, "Jansen", "Bakker", "Visser")
        await add_members(client, group, people)
        await make_worker(app).run_until_idle()
    [added] = [body for body, _ in receiver.received if body["type"] == "members.added"]
    assert receiver.bad_signatures == 0
    assert added["data"] == {
        "group": added["data"]["group"],
        "source": "BULK",
        "actorId": added["data"]["actorId"],
        "cause": None,
        "jobId": None,
        "contactIds": [parse_global_id(p)[1] for p in people],
    }
    assert added["data"]["group"]["id"] == parse_global_id(group)[1]
    assert isinstance(added["data"]["actorId"], int)


async def test_an_erasure_is_passed_on_and_portal_secrets_are_not(
    app_factory: Any, receiver: Receiver
):
    app = app_factory()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        _, token = await make_user(app, "Admin", "admin@example.coop", admin=True)
        client = GraphQLClient(http, token)
        anna = await new_contact_id(client, lastName="Zon", email="anna@zon.nl")
        invited = await client.data(
            "mutation($c: ID!) { invitePortalUser(contactId: $c) { token } }", {"c": anna}
        )
        assert invited["invitePortalUser"]["token"]
        erased = await client.data(
            "mutation($c: ID!) { eraseContact(contactId: $c) { errors { code } } }", {"c": anna}
        )
        assert erased["eraseContact"]["errors"] == []
        await make_worker(app).run_until_idle()
    bodies = [body for body, _ in receiver.received]
    assert [body["type"] for body in bodies] == ["contact.erased"]
    assert bodies[0]["data"]["contactId"] == parse_global_id(anna)[1]
    assert "gpl_" not in json.dumps(bodies), "the invitation's token never leaves"
