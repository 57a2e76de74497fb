"""What a request must be before GraphQL runs: a body within GRAPHQL_API_MAX_BODY_BYTES
(413 otherwise, with or without Content-Length), a JSON object nested at most 64 deep,
one operation or an operationName, and in development mode a Host of this machine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from graphql_api.testing import GraphQLClient, make_user, unchanged
from graphql_api.web.request_json import MAX_DEPTH

GRAPHQL_RESPONSE = "application/graphql-response+json"
CREATE = 'mutation { createGroup(input: {name: "Groot"}) { errors { code } } }'


def headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": GRAPHQL_RESPONSE,
    }


def padded(size: int) -> bytes:
    """A valid request of exactly ``size`` bytes (a mutation, padded with spaces)."""
    body = json.dumps({"query": CREATE}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


async def in_chunks(body: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def assert_too_large(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "errors": [
            {
                "message": f"The request body is larger than {limit:,} bytes.",
                "extensions": {"code": "BODY_TOO_LARGE"},
            }
        ]
    }


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/graphql", "/portal/graphql"])
async def test_a_body_over_the_limit_is_413_before_it_is_parsed(
    app_factory: Any, chunked: bool, path: str
):
    app = app_factory(max_body_bytes=2_000)
    _, token = await make_user(app, "Anna", "anna@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for size, fits in ((2_000, True), (2_001, False), (200_000, False)):
            body = padded(size)
            content: Any = in_chunks(body) if chunked else body
            async with unchanged(app) if not fits else _nothing():
                response = await http.post(path, content=content, headers=headers(token))
            sent = response.request.headers
            assert ("content-length" in sent) is not chunked
            if fits:
                assert response.status_code != 413, response.text
            else:
                assert_too_large(response, 2_000)


class _nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None


async def test_the_default_limit_is_a_mebibyte(app: Any, client: GraphQLClient):
    assert app.state.settings.max_body_bytes == 1_048_576
    response = await client.http.post(
        "/graphql", content=padded(1_048_577), headers=headers(client.token)
    )
    assert_too_large(response, 1_048_576)
    fits = await client.http.post(
        "/graphql", content=padded(1_048_576), headers=headers(client.token)
    )
    assert fits.status_code == 200


def nested_variables(depth: int) -> str:
    """Variables of objects nested ``depth`` deep, written as text (Python's encoder
    would give up first)."""
    return '{"a":' * depth + "1" + "}" * depth


def nested(depth: int) -> str:
    """A request nesting ``depth`` objects deep, itself included."""
    return '{"query": "{ me { permissions } }", "variables": ' + nested_variables(depth - 1) + "}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('"hello"', "The JSON must be an object (a list of them for a batch)."),
        ("null", "The JSON must be an object (a list of them for a batch)."),
        ("17", "The JSON must be an object (a list of them for a batch)."),
        (nested(3_000), f"The JSON nests deeper than {MAX_DEPTH} levels."),
        (nested(MAX_DEPTH + 1), f"The JSON nests deeper than {MAX_DEPTH} levels."),
        ("[" * 3_000 + "]" * 3_000, f"The JSON nests deeper than {MAX_DEPTH} levels."),
    ],
)
async def test_a_body_that_is_no_request_is_400_with_a_code(
    app: Any, client: GraphQLClient, body: str, message: str
):
    async with unchanged(app):
        response = await client.http.post("/graphql", content=body, headers=headers(client.token))
    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]
    }


async def test_variables_nested_as_deep_as_allowed_are_read(client: GraphQLClient):
    response = await client.http.post(
        "/graphql", content=nested(MAX_DEPTH), headers=headers(client.token)
    )
    assert response.status_code == 200
    deep_get = await client.http.get(
        "/graphql",
        params={
            "query": "{ me { permissions } }",
            "variables": nested_variables(3_000),
        },
        headers=headers(client.token),
    )
    assert deep_get.status_code == 400
    assert deep_get.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}


TWO = "query A { me { permissions } } query B { viewer { name } }"


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE, "application/json"])
async def test_several_operations_need_an_operation_name(
    app: Any, client: GraphQLClient, accept: str
):
    post_headers = {**headers(client.token), "Accept": accept}
    both = TWO + ' mutation C { createGroup(input: {name: "X"}) { errors { code } } }'
    async with unchanged(app):
        response = await client.http.post("/graphql", json={"query": both}, headers=post_headers)
    assert response.status_code == (400 if accept == GRAPHQL_RESPONSE else 200)
    answer = response.json()
    assert "data" not in answer
    assert answer["errors"] == [
        {
            "message": "The document has 3 operations: name the one to run with operationName.",
            "extensions": {"code": "OPERATION_NAME_REQUIRED"},
        }
    ]
    named = await client.http.post(
        "/graphql", json={"query": TWO, "operationName": "B"}, headers=post_headers
    )
    assert named.json() == {"data": {"viewer": {"name": "Johannes Frölich"}}}
    one = await client.http.post(
        "/graphql", json={"query": "query A { viewer { name } }"}, headers=post_headers
    )
    assert one.json() == {"data": {"viewer": {"name": "Johannes Frölich"}}}


async def dev_mode_answers(app_factory: Any, host: str) -> tuple[httpx.Response, httpx.Response]:
    """A development-mode app's answers to a query and to /health sent with ``host``."""
    app = app_factory(dev_mode=True)
    await make_user(app, "Bram", "bram@example.coop", admin=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        query = {"query": "{ viewer { name } }"}
        response = await http.post("/graphql", json=query, headers={"Host": host})
        return response, await http.get("/health", headers={"Host": host})


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000"])
async def test_development_mode_answers_this_machine(app_factory: Any, host: str):
    response, health = await dev_mode_answers(app_factory, host)
    assert response.json() == {"data": {"viewer": {"name": "Bram"}}}
    assert health.status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "192.168.1.5", "[::2]"])
async def test_development_mode_refuses_a_foreign_host(app_factory: Any, host: str):
    response, health = await dev_mode_answers(app_factory, host)
    assert response.status_code == 400 and health.status_code == 400
    assert "Bram" not in response.text


async def test_outside_development_mode_any_host_is_answered(client: GraphQLClient):
    response = await client.http.post(
        "/graphql",
        json={"query": "{ viewer { name } }"},
        headers={**headers(client.token), "Host": "crm.example.coop"},
    )
    assert response.status_code == 200
