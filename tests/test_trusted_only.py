"""Only trusted documents run (``GRAPHQL_API_TRUSTED_DOCUMENTS_ONLY``), on every transport of
both endpoints, for every kind of caller: docs/http.md, "Trusted documents".

The matrix: ``/graphql`` and ``/portal/graphql``; a JSON ``POST``, a ``GET`` with query
parameters, and a graphql-transport-ws ``subscribe`` (a real ``graphql-api serve``); an
anonymous caller and an authenticated one (a staff token, a portal session); and per
request a known ``documentId`` (bare and ``sha256:``-prefixed), an unknown one, a ``query``
that is exactly a trusted document's text, one that is not (an ad-hoc query, a trusted
text with a space more, an ad-hoc mutation), both a ``query`` and a ``documentId``, and a
``documentId`` that is no string. What the docs promise for each:

- the documents of the manifest run, by id or by their exact text, and answer as ever;
- an unknown id is ``UNKNOWN_DOCUMENT``, both at once ``AMBIGUOUS_DOCUMENT``, any other
  text ``DOCUMENT_NOT_TRUSTED``, a ``documentId`` that is no string ``BAD_REQUEST``: over
  HTTP a 400 without data (``application/graphql-response+json``), over WebSocket an
  ``error`` message, the connection staying open; none of them changes a row;
- the staff endpoint answers nobody without a token (401, and a WebSocket without one is
  closed with 4403), whatever the request names; the portal answers anonymous callers
  (they log in there), under the same trusted-documents rule.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from graphql_api.testing import (
    GraphQLClient,
    database_rows,
    make_user,
    new_contact_id,
    new_group_id,
    portal_client,
    serving,
    unchanged,
)

GRAPHQL_RESPONSE = "application/graphql-response+json"
WAIT = 10.0
"""Seconds a WebSocket message may take; far more than it does."""

GROUP_NAMES = "query GroupNames { groups { nodes { name } } }"
CREATE_GROUP = (
    "mutation CreateGroup($name: String!) "
    "{ createGroup(input: {name: $name}) { group { name } errors { code } } }"
)
GROUP_CHANGES = "subscription GroupChanges { groupChanged { kind name } }"
PORTAL_ME = "query PortalMe { me { displayName } }"
PING = "query Ping { __typename }"
ROLES = "query Roles { roles { key } }"
"""Needs no permission: any signed-in caller may ask it (docs/access.md)."""
TRUSTED = [GROUP_NAMES, CREATE_GROUP, GROUP_CHANGES, PORTAL_ME, PING, ROLES]

AD_HOC_MUTATION = {
    "/graphql": 'mutation { createGroup(input: {name: "Ongevraagd"}) { errors { code } } }',
    "/portal/graphql": (
        'mutation { portalLogin(email: "anna@example.coop", password: "fout") '
        "{ sessionToken errors { code } } }"
    ),
}
"""Each would change a row if it ran: a group, a failed login counted."""
AD_HOC_QUERY = {
    "/graphql": "{ groups { nodes { name } } }",
    "/portal/graphql": "{ __typename }",
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def document_id(text: str) -> str:
    return sha256(text)


def write_manifest(path: Path) -> Path:
    """The trusted documents, as GraphQL Code Generator writes them: one id with the
    specification's ``sha256:`` prefix, the others bare."""
    documents = {sha256(text): text for text in TRUSTED if text != CREATE_GROUP}
    documents[f"sha256:{sha256(CREATE_GROUP)}"] = CREATE_GROUP
    path.write_text(json.dumps(documents))
    return path


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "persisted-documents.json")


@asynccontextmanager
async def http_of(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@dataclass
class Setup:
    app: Any
    """Runs the manifest's documents only."""
    http: httpx.AsyncClient
    staff: str
    portal: str
    """A portal session of Anna Jansen."""


@pytest.fixture
async def setup(app_factory: Callable[..., Any], manifest: Path) -> AsyncIterator[Setup]:
    """Data made through an application that runs any document (with the same manifest),
    and an application on the same database that runs trusted documents only."""
    open_app = app_factory(trusted_documents=manifest)
    _, staff = await make_user(open_app, "Johannes Frölich", "johannes@example.coop", admin=True)
    async with http_of(open_app) as open_http:
        client = GraphQLClient(open_http, staff)
        await new_group_id(client, name="Zon")
        contact = await new_contact_id(
            client, firstName="Anna", lastName="Jansen", email="anna@example.coop"
        )
        portal = (await portal_client(client, contact)).token
    strict = app_factory(trusted_documents=manifest, trusted_documents_only=True)
    async with http_of(strict) as http:
        yield Setup(strict, http, staff, portal or "")


# What each request is, and what it must get --------------------------------------------


@dataclass(frozen=True)
class Kind:
    name: str
    parameters: Callable[[str], dict[str, Any]]
    """The request's parameters, given the endpoint's path."""
    refusal: str | None
    """The code it is refused with, or None: it runs."""


def known(path: str, anonymous: bool) -> str:
    """The trusted document a caller runs on this endpoint."""
    if path == "/graphql":
        return GROUP_NAMES
    return PING if anonymous else PORTAL_ME


def kinds(path: str, anonymous: bool, method: str) -> list[Kind]:
    text = known(path, anonymous)
    made = [
        Kind("a known documentId", lambda _: {"documentId": document_id(text)}, None),
        Kind(
            "a known documentId, sha256: prefixed",
            lambda _: {"documentId": f"sha256:{document_id(text)}"},
            None,
        ),
        Kind(
            "an unknown documentId",
            lambda p: {"documentId": sha256(AD_HOC_QUERY[p])},
            "UNKNOWN_DOCUMENT",
        ),
        Kind("a query that is a trusted text", lambda _: {"query": text}, None),
        Kind("an ad-hoc query", lambda p: {"query": AD_HOC_QUERY[p]}, "DOCUMENT_NOT_TRUSTED"),
        Kind("a trusted text and a space", lambda _: {"query": text + " "}, "DOCUMENT_NOT_TRUSTED"),
        Kind(
            "a query and a documentId, agreeing",
            lambda _: {"query": text, "documentId": document_id(text)},
            "AMBIGUOUS_DOCUMENT",
        ),
        Kind(
            "an ad-hoc query and a known documentId",
            lambda p: {"query": AD_HOC_MUTATION[p], "documentId": document_id(text)},
            "AMBIGUOUS_DOCUMENT",
        ),
    ]
    if method != "GET":  # mutations over GET are refused anyway
        made.append(
            Kind(
                "an ad-hoc mutation",
                lambda p: {"query": AD_HOC_MUTATION[p]},
                "DOCUMENT_NOT_TRUSTED",
            )
        )
    if method == "POST":  # a query string holds strings only; see below for WebSocket
        made.append(NOT_A_STRING)
    return made


NOT_A_STRING = Kind(
    "an ad-hoc mutation and a documentId that is no string",
    lambda p: {"query": AD_HOC_MUTATION[p], "documentId": 42},
    "BAD_REQUEST",
)


async def send(
    http: httpx.AsyncClient,
    path: str,
    token: str | None,
    parameters: dict[str, Any],
    method: str,
    accept: str = GRAPHQL_RESPONSE,
) -> httpx.Response:
    headers = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token else {})}
    if method == "GET":
        query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in parameters.items()}
        return await http.get(path, params=query, headers=headers)
    return await http.post(path, json=parameters, headers=headers)


def expected_data(path: str, anonymous: bool) -> dict[str, Any]:
    if path == "/graphql":
        return {"groups": {"nodes": [{"name": "Zon"}]}}
    return {"__typename": "Query"} if anonymous else {"me": {"displayName": "Anna Jansen"}}


def code_of(response: httpx.Response) -> str:
    [error] = response.json()["errors"]
    return error["extensions"]["code"]


# HTTP -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("who", ["anonymous", "authenticated"])
@pytest.mark.parametrize("path", ["/graphql", "/portal/graphql"])
async def test_over_http_only_trusted_documents_run(setup: Setup, path: str, who: str, method: str):
    anonymous = who == "anonymous"
    token = None if anonymous else setup.staff if path == "/graphql" else setup.portal
    wrong = []
    for kind in kinds(path, anonymous, method):
        async with unchanged(setup.app):
            response = await send(setup.http, path, token, kind.parameters(path), method)
        got = (response.status_code, response.json())
        if path == "/graphql" and anonymous:
            # No token, no answer, whatever the request names.
            if response.status_code != 401 or code_of(response) != "UNAUTHENTICATED":
                wrong.append(f"{kind.name}: {got}, not 401 UNAUTHENTICATED")
            continue
        if kind.refusal is None:
            if got != (200, {"data": expected_data(path, anonymous)}):
                wrong.append(f"{kind.name}: {got}, but it is trusted and runs")
        elif response.status_code != 400 or code_of(response) != kind.refusal:
            wrong.append(f"{kind.name}: {got}, not 400 {kind.refusal}")
        elif "data" in response.json():
            wrong.append(f"{kind.name}: refused with data {got}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", ["/graphql", "/portal/graphql"])
async def test_a_trusted_mutation_runs_by_id_and_by_its_text_and_no_other(setup: Setup, path: str):
    """The rows change for a trusted mutation only: by id (prefixed in the manifest, sent
    bare), and by its exact text; the portal has no such document, so it runs none."""
    token = setup.staff if path == "/graphql" else setup.portal
    by_id = {"documentId": sha256(CREATE_GROUP), "variables": {"name": "Wind"}}
    by_text = {"query": CREATE_GROUP, "variables": {"name": "Water"}}
    if path == "/graphql":
        for parameters, name in [(by_id, "Wind"), (by_text, "Water")]:
            response = await send(setup.http, path, token, parameters, "POST")
            assert response.json() == {
                "data": {"createGroup": {"group": {"name": name}, "errors": []}}
            }
        names = await send(setup.http, path, token, {"documentId": sha256(GROUP_NAMES)}, "POST")
        assert names.json()["data"]["groups"]["nodes"] == [
            {"name": "Water"},
            {"name": "Wind"},
            {"name": "Zon"},
        ]
        return
    # On the portal the staff mutation is trusted, but does not validate: it never runs.
    async with unchanged(setup.app):
        for parameters in (by_id, by_text):
            response = await send(setup.http, path, token, parameters, "POST")
            assert response.status_code == 400, response.text
            assert code_of(response) == "GRAPHQL_VALIDATION_FAILED"


@pytest.mark.parametrize("path", ["/graphql", "/portal/graphql"])
async def test_nobody_runs_a_trusted_document_on_the_staff_endpoint_by_a_browser_link(
    setup: Setup, path: str
):
    """A ``GET`` naming a trusted document, as a browser following a link sends it
    (``Accept: text/html``), is answered with the document's answer (docs/http.md) -- for
    a caller the endpoint answers at all. Without a token, ``/graphql`` answers nothing
    but GraphiQL's page, which holds no data: never a document's data."""
    browser = "text/html,application/xhtml+xml,*/*;q=0.8"
    # Roles need no permission, only a signed-in caller: they would show in the answer.
    anonymous_answer = await send(
        setup.http, path, None, {"documentId": document_id(ROLES)}, "GET", accept=browser
    )
    if path == "/graphql":
        assert anonymous_answer.status_code == 401, anonymous_answer.text
        assert "data" not in anonymous_answer.json()
    else:  # no such field on the portal: it ran, and did not validate
        assert code_of(anonymous_answer) == "GRAPHQL_VALIDATION_FAILED", anonymous_answer.text
    token = setup.staff if path == "/graphql" else setup.portal
    signed_in = await send(
        setup.http,
        path,
        token,
        {"documentId": document_id(known(path, anonymous=False))},
        "GET",
        accept=browser,
    )
    assert signed_in.json() == {"data": expected_data(path, anonymous=False)}


# WebSocket ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_server(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real ``graphql-api serve`` running trusted documents only, on the test database;
    its URL. One per module: starting one takes seconds."""
    path = write_manifest(tmp_path_factory.mktemp("trusted") / "persisted-documents.json")
    env = {
        **server_env,
        "GRAPHQL_API_TRUSTED_DOCUMENTS": str(path),
        "GRAPHQL_API_TRUSTED_DOCUMENTS_ONLY": "true",
        "GRAPHQL_API_OUTBOX_IN_PROCESS_WORKER": "false",
    }
    with serving(env) as (url, _):
        yield url


@asynccontextmanager
async def connected(url: str, token: str | None, path: str = "/graphql") -> AsyncIterator[Any]:
    async with websockets.connect(
        url.replace("http", "ws") + path,
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
    ) as socket:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        yield socket


async def answers(socket: Any, operation: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Subscribe, then the messages for the operation until its ``complete`` or ``error``."""
    await socket.send(json.dumps({"id": operation, "type": "subscribe", "payload": payload}))
    got = []
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
        if message.get("id") != operation:
            continue
        got.append(message)
        if message["type"] in ("complete", "error"):
            return got


async def test_over_websocket_only_trusted_documents_run(strict_server: str, setup: Setup):
    wrong = []
    before = await database_rows(setup.app)
    async with connected(strict_server, setup.staff) as socket:
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        for i, kind in enumerate(kinds("/graphql", anonymous=False, method="WS")):
            got = await answers(socket, str(i), kind.parameters("/graphql"))
            types = [message["type"] for message in got]
            if kind.refusal is None:
                expected = {"data": expected_data("/graphql", anonymous=False)}
                if types != ["next", "complete"] or got[0]["payload"] != expected:
                    wrong.append(f"{kind.name}: {got}, but it is trusted and runs")
                continue
            if types != ["error"]:
                wrong.append(f"{kind.name}: {got}, not refused")
                continue
            codes = [e.get("extensions", {}).get("code") for e in got[0]["payload"]]
            if codes != [kind.refusal]:
                wrong.append(f"{kind.name}: {codes}, not {kind.refusal}")
        # The connection stayed open through every refusal.
        last = await answers(socket, "last", {"documentId": document_id(GROUP_NAMES)})
        assert [message["type"] for message in last] == ["next", "complete"], last
    after = await database_rows(setup.app)
    changed = sorted(table for table in before if before[table] != after[table])
    if changed:
        wrong.append(f"the refused operations changed {changed}: {after['groups']}")
    assert not wrong, "\n".join(wrong)


async def test_over_websocket_a_document_id_that_is_no_string_runs_nothing(
    strict_server: str, setup: Setup
):
    """A ``subscribe`` whose ``documentId`` is no string names no trusted document: it is
    refused (over HTTP: ``BAD_REQUEST``), never taken as if it sent no ``documentId``, and
    its ``query``, an ad-hoc mutation, does not run."""
    async with unchanged(setup.app), connected(strict_server, setup.staff) as socket:
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        for document_id in (42, ["x"], {"id": sha256(GROUP_NAMES)}, True):
            payload = {"query": AD_HOC_MUTATION["/graphql"], "documentId": document_id}
            got = await answers(socket, f"{document_id!r}", payload)
            assert [message["type"] for message in got] == ["error"], (document_id, got)


async def test_a_trusted_subscription_and_mutation_run_over_websocket_by_id(
    strict_server: str, setup: Setup
):
    async with connected(strict_server, setup.staff) as socket:
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        subscribe = {"documentId": f"sha256:{document_id(GROUP_CHANGES)}"}
        await socket.send(json.dumps({"id": "s", "type": "subscribe", "payload": subscribe}))
        await asyncio.sleep(0.5)  # the subscription starts after the newest event
        created = await answers(
            socket, "m", {"documentId": sha256(CREATE_GROUP), "variables": {"name": "Golf"}}
        )
        assert created[0]["payload"] == {
            "data": {"createGroup": {"group": {"name": "Golf"}, "errors": []}}
        }
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
            if message.get("id") == "s":
                break
        assert message["payload"] == {"data": {"groupChanged": {"kind": "CREATED", "name": "Golf"}}}


async def test_over_websocket_nobody_runs_anything_without_a_token(
    strict_server: str, setup: Setup
):
    async with unchanged(setup.app):
        # A connection_init without a token is refused: closed with 4403.
        async with connected(strict_server, None) as socket:
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(3):
                    await asyncio.wait_for(socket.recv(), WAIT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        # A subscribe before any connection_init runs nothing either.
        async with websockets.connect(
            strict_server.replace("http", "ws") + "/graphql",
            subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
        ) as socket:
            payload = {"documentId": sha256(CREATE_GROUP), "variables": {"name": "Stiekem"}}
            await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            with pytest.raises(ConnectionClosed):
                for _ in range(3):
                    message = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
                    assert message["type"] not in ("next", "complete"), message


async def test_the_portal_has_no_websocket_to_run_anything_on(strict_server: str, setup: Setup):
    for token in (None, setup.portal):
        with pytest.raises(InvalidStatus):
            async with connected(strict_server, token, path="/portal/graphql") as socket:
                await asyncio.wait_for(socket.recv(), WAIT)
