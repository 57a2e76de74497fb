"""Limits on query shape, and no internals in errors."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from graphql_api.kernel.db import create_engine
from graphql_api.migrations.runner import upgrade
from graphql_api.settings import Settings
from graphql_api.testing import GraphQLClient, make_user
from graphql_api.web.app import create_app

DEEP = "{ groups { edges { node { members { edges { node { groups { members { edges { node { groups { members { edges { node { id } } } } } } } } } } } } } } }"


async def test_query_depth_is_limited(client: GraphQLClient):
    body = await client.execute(DEEP)
    [error] = body["errors"]
    assert error["message"] == "'anonymous' exceeds maximum operation depth of 12"
    assert error["extensions"] == {"code": "LIMIT_EXCEEDED"}
    assert "data" not in body


async def test_aliases_are_limited(client: GraphQLClient):
    query = "{ " + " ".join(f"a{i}: users {{ id }}" for i in range(31)) + " }"
    body = await client.execute(query)
    assert [e["message"] for e in body["errors"]] == ["31 aliases found. Allowed: 30"]
    assert body["errors"][0]["extensions"] == {"code": "LIMIT_EXCEEDED"}
    assert "data" not in body


async def test_tokens_are_limited(client: GraphQLClient):
    query = "{ users { " + "id " * 6000 + "} }"
    body = await client.execute(query)
    assert [e["message"] for e in body["errors"]] == [
        "Syntax Error: Document contains more than 5000 tokens. Parsing aborted."
    ]
    assert body["errors"][0]["extensions"] == {"code": "LIMIT_EXCEEDED"}
    assert "data" not in body
    unfinished = await client.execute("{ users { " + "id " * 10)
    assert unfinished["errors"][0]["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}


async def test_server_faults_reveal_nothing(tmp_path):
    """A broken database yields a generic error: no SQL, no table names, no traceback."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'broken.sqlite3'}"
    engine = create_engine(url)
    await upgrade(engine)
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE email_templates"))
    await engine.dispose()

    app = create_app(Settings(database_url=url))
    _, token = await make_user(app, "Johannes", "j@example.coop", admin=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        body = await GraphQLClient(http, token).execute(
            "{ emailTemplates { name } users { name } }"
        )
    await app.state.engine.dispose()
    [error] = body["errors"]
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert error["path"] == ["emailTemplates"]
    assert "email_templates" not in str(body) and "SELECT" not in str(body)
    # emailTemplates is a non-null field: its failure nulls the whole answer, users too.
    assert body["data"] is None
