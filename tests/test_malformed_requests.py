"""Malformed requests, to both endpoints, anonymous or not: each is a 4xx (or, for a
document that does not parse or validate under ``application/json``, the 200 GraphQL over
HTTP asks for) with a GraphQL error body whose errors all have a code; never a 500
(docs/http.md, "Malformed requests"). A body that stalls is refused with 408 in time, its
connection closed (docs/reliability.md, "Time budget"). Client errors are logged at INFO
without a traceback; only server faults are errors, with one.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import strawberry
from starlette.types import Message

from graphql_api.auth.middleware import PORTAL_PATH
from graphql_api.plugin import hookimpl
from graphql_api.testing import (
    GraphQLClient,
    make_user,
    new_contact_id,
    portal_client,
    serving,
)
from graphql_api.web.body_limit import BodyLimit
from graphql_api.web.guards import RequestBudget

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
STAFF = "/graphql"
HUGE_NUMBER = "1" + "0" * 5000
"""More digits than Python turns into an int (4,300): its JSON parser raises ValueError."""


@dataclass
class Case:
    """One malformed request, and the code it is refused with. ``before_graphql``: refused
    before GraphQL runs, so a 4xx in either media type; otherwise a document GraphQL
    refused, 400 under ``application/graphql-response+json`` and 200 under
    ``application/json``."""

    name: str
    code: str
    before_graphql: bool
    body: bytes | None = None
    params: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 400

    def __str__(self) -> str:
        return self.name


def post(name: str, body: object, code: str, before_graphql: bool = True) -> Case:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Case(name, code, before_graphql, body=raw)


def get(name: str, params: dict[str, str], code: str, before_graphql: bool = True) -> Case:
    return Case(name, code, before_graphql, params=params)


CASES = [
    post("parse error", {"query": "{ __typename "}, "GRAPHQL_PARSE_FAILED", False),
    post("empty selection set", {"query": "{ }"}, "GRAPHQL_PARSE_FAILED", False),
    post("validation error", {"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED", False),
    post(
        "variable of the wrong type",
        {"query": "query($n: Boolean!) { __typename @include(if: $n) }", "variables": {"n": 7}},
        "BAD_USER_INPUT",
        False,
    ),
    post(
        "unknown operation name",
        {"query": "query A { __typename }", "operationName": "B"},
        "BAD_REQUEST",
    ),
    post(
        "operation name no string",
        {"query": "query A { __typename }", "operationName": ["A"]},
        "BAD_REQUEST",
    ),
    post("not UTF-8", b'{"query": "{ __typename \xff }"}', "BAD_REQUEST"),
    post("not JSON", b'{"query": ', "BAD_REQUEST"),
    post("empty body", b"", "BAD_REQUEST"),
    post("a JSON string", "{ __typename }", "BAD_REQUEST"),
    post("a JSON number", 7, "BAD_REQUEST"),
    post("a batch", [{"query": "{ __typename }"}], "BAD_REQUEST"),
    post("query no string", {"query": {"text": "{ __typename }"}}, "BAD_REQUEST"),
    post("no query", {"variables": {}}, "BAD_REQUEST"),
    post("variables no object", {"query": "{ __typename }", "variables": [1]}, "BAD_REQUEST"),
    post(
        "a number too long for Python",
        f'{{"query": "{{ __typename }}", "variables": {{"n": {HUGE_NUMBER}}}}}'.encode(),
        "BAD_REQUEST",
    ),
    Case(
        "gzip",
        "UNSUPPORTED_CONTENT_ENCODING",
        True,
        body=gzip.compress(b'{"query": "{ __typename }"}'),
        headers={"Content-Encoding": "gzip"},
        status=415,
    ),
    get("GET: parse error", {"query": "{ __typename "}, "GRAPHQL_PARSE_FAILED", False),
    get("GET: validation error", {"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED", False),
    get(
        "GET: unknown operation name",
        {"query": "query A { __typename }", "operationName": "B"},
        "BAD_REQUEST",
    ),
    get("GET: variables not JSON", {"query": "{ __typename }", "variables": "{"}, "BAD_REQUEST"),
    get(
        "GET: variables no object",
        {"query": "{ __typename }", "variables": '"x"'},
        "BAD_REQUEST",
    ),
]


async def send(
    http: httpx.AsyncClient, path: str, case: Case, accept: str, token: str | None
) -> httpx.Response:
    headers = {"Accept": accept, **case.headers}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if case.params is not None:
        return await http.get(path, params=case.params, headers=headers)
    headers.setdefault("Content-Type", JSON)
    return await http.post(path, content=case.body or b"", headers=headers)


def problems_of(
    case: Case, accept: str, response: httpx.Response, anonymous_staff: bool
) -> list[str]:
    """What is wrong with the answer to ``case``: nothing, or each problem."""
    problems = []
    if anonymous_staff and case.status == 400:
        # Staff requests need a token first; only the body's own refusals come before.
        code, status, media_type = "UNAUTHENTICATED", 401, JSON
    elif case.status != 400:
        code, status, media_type = case.code, case.status, JSON  # refused before the view
    else:
        code, media_type = case.code, accept
        status = 400 if case.before_graphql or accept == GRAPHQL_RESPONSE else 200
    if response.status_code != status:
        problems.append(f"status {response.status_code}, not {status}")
    if not response.headers.get("content-type", "").startswith(media_type):
        problems.append(f"content-type {response.headers.get('content-type')}")
    try:
        answer = response.json()
    except ValueError:
        return [*problems, f"no JSON: {response.text[:200]}"]
    codes = [(error.get("extensions") or {}).get("code") for error in answer.get("errors", [])]
    if codes != [code]:
        problems.append(f"codes {codes}, not [{code}]")
    if status >= 400 and answer.get("data") is not None:
        problems.append("data in a refusal")
    return [f"{case} ({accept}): {p}: {response.text[:200]}" for p in problems]


async def check_every_case(http: httpx.AsyncClient, path: str, token: str | None) -> None:
    anonymous_staff = path == STAFF and token is None
    problems = []
    for case in CASES:
        for accept in (JSON, GRAPHQL_RESPONSE):
            response = await send(http, path, case, accept, token)
            problems += problems_of(case, accept, response, anonymous_staff)
    assert not problems, "\n".join(problems)


@pytest.fixture
async def raw_http(app: Any) -> Any:
    """A client that gets the 500 of an application fault, as a real one would, instead of
    the exception."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def test_malformed_requests_to_the_portal_anonymously(raw_http: httpx.AsyncClient):
    await check_every_case(raw_http, PORTAL_PATH, None)


async def test_malformed_requests_to_the_portal_logged_in(
    raw_http: httpx.AsyncClient, client: GraphQLClient
):
    contact = await new_contact_id(client, lastName="Jansen", email="jansen@example.nl")
    session = await portal_client(client, contact)
    await check_every_case(raw_http, PORTAL_PATH, session.token)


async def test_malformed_requests_to_the_staff_api_anonymously(raw_http: httpx.AsyncClient):
    await check_every_case(raw_http, STAFF, None)


async def test_malformed_requests_to_the_staff_api_with_a_token(
    raw_http: httpx.AsyncClient, admin: tuple[int, str]
):
    await check_every_case(raw_http, STAFF, admin[1])


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", [STAFF, PORTAL_PATH])
async def test_a_method_graphql_does_not_take_is_405_with_a_code(
    raw_http: httpx.AsyncClient,
    admin: tuple[int, str],
    client: GraphQLClient,
    method: str,
    path: str,
):
    if path == STAFF:
        token = admin[1]
    else:
        contact = await new_contact_id(client, lastName="Jansen", email="jansen@example.nl")
        token = (await portal_client(client, contact)).token
    response = await raw_http.request(
        method,
        path,
        json={"query": "{ __typename }"},
        headers={"Authorization": f"Bearer {token}", "Accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 405, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "METHOD_NOT_ALLOWED"


LIMITS = {
    "depth": (
        {"max_query_depth": 0},
        {STAFF: "{ me { permissions } }", PORTAL_PATH: "{ me { displayName } }"},
    ),
    "aliases": (
        {"max_aliases": 1},
        {STAFF: "{ a: __typename b: __typename }", PORTAL_PATH: "{ a: __typename b: __typename }"},
    ),
    "tokens": (
        {"max_tokens": 10},
        {STAFF: "{ " + "__typename " * 12 + "}", PORTAL_PATH: "{ " + "__typename " * 12 + "}"},
    ),
    "cost": (
        {"max_query_cost": 0},
        {STAFF: "{ groups { nodes { name } } }", PORTAL_PATH: "{ groups { name } }"},
    ),
}


@pytest.mark.parametrize("limit", sorted(LIMITS))
async def test_documents_over_a_limit_are_refused_with_a_code(
    app_factory: Callable[..., Any], limit: str
):
    settings, documents = LIMITS[limit]
    app = app_factory(**settings)
    _, token = await make_user(app, "Anna", "anna@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    problems = []
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for path, who in ((PORTAL_PATH, None), (STAFF, token)):
            case = post(f"{limit} on {path}", {"query": documents[path]}, "LIMIT_EXCEEDED", False)
            for accept in (JSON, GRAPHQL_RESPONSE):
                response = await send(http, path, case, accept, who)
                problems += problems_of(case, accept, response, False)
    assert not problems, "\n".join(problems)


PLANNED = "query Groups($first: Int) { groups(first: $first) { nodes { name } } }"


async def test_malformed_requests_of_a_planned_query(app_factory: Callable[..., Any]):
    """The fast lane (compiled reads on) reads the body before the view: what it cannot
    read or answer goes on to the view, which refuses it with a code."""
    app = app_factory(compiled_reads="on")
    _, token = await make_user(app, "Anna", "anna@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        await GraphQLClient(http, token).data(PLANNED, {"first": 5})
        assert app.state.compiled_reads.plan_for(PLANNED, None) is not None
        cases = [
            post(
                "wrong type",
                {"query": PLANNED, "variables": {"first": "x"}},
                "BAD_USER_INPUT",
                False,
            ),
            post(
                "a list for an Int",
                {"query": PLANNED, "variables": {"first": [1]}},
                "BAD_USER_INPUT",
                False,
            ),
            post(
                "too long a number",
                f'{{"query": "{PLANNED}", "variables": {{"first": {HUGE_NUMBER}}}}}'.encode(),
                "BAD_REQUEST",
            ),
            post(
                "not UTF-8",
                f'{{"query": "{PLANNED}", "x": "\xff"}}'.encode("latin-1"),
                "BAD_REQUEST",
            ),
            post("unknown operation", {"query": PLANNED, "operationName": "Nope"}, "BAD_REQUEST"),
            post("operation name no string", {"query": PLANNED, "operationName": 1}, "BAD_REQUEST"),
        ]
        problems = []
        for case in cases:
            for accept in (JSON, GRAPHQL_RESPONSE):
                problems += problems_of(
                    case, accept, await send(http, STAFF, case, accept, token), False
                )
    assert not problems, "\n".join(problems)


# Logging: a client's mistake is INFO, one line, no traceback; a server fault is an ERROR
# with its traceback.


class _Boom:
    """A plugin whose ``boom`` field fails: a server fault."""

    PLUGIN_NAME = "boom"

    @hookimpl
    def query_fields(self) -> list[Any]:
        def boom() -> int:
            raise RuntimeError("the server's own fault")

        return [strawberry.field(resolver=boom, name="boom", description="Fails.")]


async def test_client_errors_are_info_without_a_traceback_and_server_faults_errors(
    app_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
):
    app = app_factory(plugins=[_Boom()])
    _, token = await make_user(app, "Anna", "anna@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    caplog.set_level(logging.INFO)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        anonymous = GraphQLClient(http, None, path=PORTAL_PATH)
        staff = GraphQLClient(http, token)
        await anonymous.post("{ me { displayName } }")  # Log in first
        await anonymous.post("{ nope }")
        await http.post(PORTAL_PATH, content=b"\xff", headers={"Content-Type": JSON})
        await staff.post("{ nope }")
        await http.post(
            STAFF,
            json={"query": "query A { __typename }", "operationName": "B"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []
        told = [r.getMessage() for r in caplog.records if r.name == "graphql_api.client_errors"]
        assert all(
            r.levelno == logging.INFO
            for r in caplog.records
            if r.name == "graphql_api.client_errors"
        )
        for expected in (
            "UNAUTHENTICATED: Log in first",
            "GRAPHQL_VALIDATION_FAILED",
            "not UTF-8",
            "Unknown operation named",
        ):
            assert any(expected in line for line in told), (expected, told)

        caplog.clear()
        fault = await staff.post("{ boom }")
        assert fault.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert error.exc_info is not None and "the server's own fault" in str(error.exc_info[1])


# A body that stalls, over a real socket: a real `graphql-api serve`.


@pytest.fixture(scope="module")
def stalling_server(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A server reading bodies for at most 1 s, logging to a file: (URL, log)."""
    log = tmp_path_factory.mktemp("served") / "server.log"
    env = {
        **server_env,
        "GRAPHQL_API_BODY_READ_TIMEOUT_SECONDS": "1",
        "GRAPHQL_API_LOG_LEVEL": "INFO",
    }
    with log.open("w") as file, serving(env, log=file) as (url, _):
        yield url, log


async def stall(url: str, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A request promising 100 bytes of body, sending 10, then nothing."""
    where = urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n".encode()
        + b'{"query": '
    )
    await writer.drain()
    return reader, writer


@pytest.mark.parametrize("path", [STAFF, PORTAL_PATH])
async def test_a_stalled_body_is_refused_in_time_and_its_connection_closed(
    stalling_server: tuple[str, Path], path: str
):
    url, _ = stalling_server
    started = time.perf_counter()
    stalled = [await stall(url, path) for _ in range(3)]
    async with httpx.AsyncClient(base_url=url) as http:
        # The server answers others meanwhile.
        assert (await http.get("/health/ready")).status_code == 200
        for reader, writer in stalled:
            # Read until the server closes the connection: without a deadline, never.
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), answer
            [error] = json.loads(body)["errors"]
            assert error["extensions"] == {"code": "BODY_READ_TIMEOUT"}, error
        assert 0.9 < time.perf_counter() - started < 5
        # Nothing of them is left holding the server.
        answered = await http.post(path, json={"query": "{ __typename }"})
        assert answered.status_code in (200, 401), answered.text


async def test_the_served_log_holds_client_errors_at_info_without_a_traceback(
    stalling_server: tuple[str, Path],
):
    url, log = stalling_server
    async with httpx.AsyncClient(base_url=url) as http:
        for body in ({"query": "{ nope }"}, {"query": "{ me { displayName } }"}, {"query": "{"}):
            response = await http.post(PORTAL_PATH, json=body)
            assert response.status_code == 200 and response.json()["errors"], response.text
        bad = await http.post(PORTAL_PATH, content=b"\xff\xfe\x80", headers={"Content-Type": JSON})
        assert bad.status_code == 400
    await asyncio.sleep(0.2)  # the server writes its log as it goes
    text = log.read_text()
    assert "Traceback" not in text, text
    assert not [line for line in text.splitlines() if line.startswith(("ERROR", "CRITICAL"))], text
    assert "INFO graphql_api.client_errors: GraphQL error UNAUTHENTICATED: Log in first" in text
    assert "INFO graphql_api.client_errors: GraphQL error GRAPHQL_VALIDATION_FAILED" in text


# A body's reading counts against the request's time budget (ASGI, without a server).


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }


async def _call(
    app: Any, path: str, chunks: list[tuple[float, bytes]], whole: bool = True
) -> tuple[int, Any]:
    """Send ``chunks`` of a body (each after its delay; ``whole``: the last one ends it)
    and then stay, without a word; the status and JSON of the answer."""
    pending = list(chunks)
    messages: list[Message] = []

    async def receive() -> Message:
        if pending:
            delay, chunk = pending.pop(0)
            await asyncio.sleep(delay)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending) or not whole}
        await asyncio.Event().wait()  # the client neither sends nor leaves
        raise AssertionError

    async def send(message: Message) -> None:
        messages.append(message)

    await asyncio.wait_for(app(_scope(path), receive, send), 10)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], json.loads(body)


async def test_a_stalled_body_is_refused_within_the_request_budget(
    app_factory: Callable[..., Any],
):
    """The body's own deadline is the budget when that is shorter."""
    app = app_factory(request_timeout_seconds=0.5)  # GRAPHQL_API_BODY_READ_TIMEOUT_SECONDS: 10
    started = time.perf_counter()
    status, answer = await _call(app, PORTAL_PATH, [(0, b'{"query": ')], whole=False)
    assert status == 408 and answer["errors"][0]["extensions"]["code"] == "BODY_READ_TIMEOUT"
    assert time.perf_counter() - started < 2


async def test_the_time_spent_reading_the_body_counts_against_the_budget():
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await asyncio.sleep(0.6)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    app = BodyLimit(RequestBudget(slow, seconds=1.0), max_bytes=1000, read_seconds=10)
    body = json.dumps({"query": "{ __typename }"}).encode()
    # 0.6 s to send the body and 0.6 s of work: over the budget of 1 s, counted from the
    # first byte; 0.6 s each would both fit.
    status, answer = await _call(app, PORTAL_PATH, [(0, body[:5]), (0.6, body[5:])])
    assert status == 504 and answer["errors"][0]["extensions"]["code"] == "TIMEOUT"
