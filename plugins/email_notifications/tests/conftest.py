"""The e-mail plugin's fixtures: an SMTP server on loopback, and an application sending
to it with a group that mails its new members."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import graphql_api_email_notifications
import httpx
import pytest
from smtp_testing import Inbox, SmtpServer

from graphql_api.testing import (
    GraphQLClient,
    first_user_id,
    free_port,
    make_user,
    new_group_id,
    new_template_id,
)


@pytest.fixture
def smtp_options() -> dict[str, Any]:
    """The test server's ``Controller`` options: none, a server in clear. A test module
    overrides it for a server with TLS, and sets the plugin's settings to match."""
    return {}


@pytest.fixture
def smtp(
    monkeypatch: pytest.MonkeyPatch, smtp_options: dict[str, Any]
) -> Iterator[tuple[Inbox, SmtpServer]]:
    inbox = Inbox()
    server = SmtpServer(inbox, free_port(), smtp_options)
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
