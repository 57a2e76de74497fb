"""The Laposta plugin's fixtures: the stand-in for Laposta on loopback, and an application
with the plugin pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import graphql_api_laposta
import httpx
import pytest
from laposta_standin import API_KEY, LapostaStandIn, started
from laposta_testing import WEBHOOK_SECRET, Setup

from graphql_api.testing import GraphQLClient, make_user


@pytest.fixture(scope="session")
def standin_server() -> Iterator[LapostaStandIn]:
    yield from started()


@pytest.fixture
def standin(standin_server: LapostaStandIn, monkeypatch: pytest.MonkeyPatch) -> LapostaStandIn:
    """The stand-in, emptied and without faults, and the plugin's settings pointing at it."""
    standin_server.reset()
    monkeypatch.setenv("GRAPHQL_API_LAPOSTA_API_KEY", API_KEY)
    monkeypatch.setenv("GRAPHQL_API_LAPOSTA_BASE_URL", standin_server.url)
    monkeypatch.setenv("GRAPHQL_API_LAPOSTA_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("GRAPHQL_API_LAPOSTA_BULK_THRESHOLD", "3")
    return standin_server


@pytest.fixture
async def setup(app_factory: Any, standin: LapostaStandIn) -> AsyncIterator[Setup]:
    # Strict: a hook of the plugin writing a core row fails the test.
    app = app_factory(
        plugins=[graphql_api_laposta], outbox_retry_base_seconds=0, strict_plugins=True
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    yield Setup(app, http, GraphQLClient(http, token), standin)
    await http.aclose()
