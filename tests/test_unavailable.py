"""A database that is away, or drops the service's connections (docs/reliability.md,
"Database unavailable"): requests get 503 ``SERVICE_UNAVAILABLE`` with a GraphQL body,
the probe says not ready, and once the database is back the pool serves again without a
restart."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import strawberry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.graphql_base.context import Info
from graphql_api.kernel.db import create_engine
from graphql_api.plugin import hookimpl
from graphql_api.settings import Settings
from graphql_api.testing import GraphQLClient, make_user, new_group_id
from graphql_api.web.app import create_app

AWAY = "postgresql+asyncpg://nobody:secret@127.0.0.1:1/nothing"
"""A database nobody listens for: every connection is refused."""
UNAVAILABLE = {
    "message": "The database cannot be reached just now; try again shortly.",
    "extensions": {"code": "SERVICE_UNAVAILABLE"},
}
TERMINATE_OTHERS = text(
    """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid()"""
)


async def test_a_database_that_is_away_answers_503_and_not_ready(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(Settings(database_url=AWAY))
    caplog.set_level(logging.INFO, logger="graphql_api")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/health/ready")).status_code == 503
        # The token is checked before GraphQL runs.
        staff = await GraphQLClient(http, "gapi_whatever").post("{ me { permissions } }")
        # The portal's login runs in GraphQL.
        portal = await GraphQLClient(http, None, path="/portal/graphql").post(
            'mutation { portalLogin(email: "a@example.coop", password: "x") { errors { code } } }'
        )
    await app.state.engine.dispose()
    assert staff.status_code == 503
    assert staff.json() == {"errors": [UNAVAILABLE]}
    assert portal.status_code == 503
    assert [{k: e[k] for k in UNAVAILABLE} for e in portal.json()["errors"]] == [UNAVAILABLE]
    assert "secret" not in staff.text + portal.text and "127.0.0.1" not in portal.text
    for record in caplog.records:
        if record.name.startswith("graphql_api"):
            assert record.exc_info is None, record.getMessage()


class _Statements:
    """A plugin with one query field, ``name``, that runs ``statements`` on the request's
    session and answers true."""

    PLUGIN_NAME = "statements"

    def __init__(self, name: str, *statements: str) -> None:
        self.name = name
        self.statements = statements

    @hookimpl
    def query_fields(self) -> list[Any]:
        async def field(info: Info) -> bool:
            async def run(session: AsyncSession) -> bool:
                for statement in self.statements:
                    await session.execute(text(statement))
                return True

            return await info.context.db.run(run)

        return [strawberry.field(resolver=field, name=self.name, description="Runs SQL.")]


DROPPING = ("dropConnection", "SELECT pg_terminate_backend(pg_backend_pid())")
"""A field whose statement ends its own connection, as a database restart or
``pg_terminate_backend`` would, after the pool lent it (no ping sees it)."""
TIMED_OUT = ("timedOut", "SET LOCAL statement_timeout = '50ms'", "SELECT pg_sleep(5)")
"""A field whose statement PostgreSQL stops at a short ``statement_timeout``, as it stops
any statement that runs past the request's budget."""


@pytest.fixture
async def on_postgresql(database_url: str) -> None:
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("connections dropped by the server: PostgreSQL's")


async def test_a_connection_dropped_midway_is_503_and_the_next_request_is_served(
    on_postgresql: None, app_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory(plugins=[_Statements(*DROPPING)])
    _, token = await make_user(app, "Johannes", "johannes@example.coop", admin=True)
    caplog.set_level(logging.INFO, logger="graphql_api")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        client = GraphQLClient(http, token)
        response = await client.post("{ dropConnection }")
        assert response.status_code == 503
        assert [{k: e[k] for k in UNAVAILABLE} for e in response.json()["errors"]] == [UNAVAILABLE]
        for round_ in range(3):
            await new_group_id(client, name=f"Daarna {round_}")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "the database is unavailable at ['dropConnection']: connection was closed in the "
        "middle of operation: terminating connection due to "
        "administrator command"
    ]


async def test_the_pool_recovers_when_the_server_ends_every_connection(
    on_postgresql: None, client: GraphQLClient, app: Any
) -> None:
    """Every connection of the test database ended at once (a restart, a failover): a
    request after it is served or, at worst, answered 503; the ones after it are served."""
    for round_ in range(3):
        await new_group_id(client, name=f"Vooraf {round_}")
    other = create_engine(app.state.engine.url.render_as_string(hide_password=False))
    async with other.connect() as connection:
        assert await connection.scalar(TERMINATE_OTHERS) >= 1
    await other.dispose()
    first = await client.post("{ groups { totalCount } }")
    if first.status_code == 503:
        assert [{k: e[k] for k in UNAVAILABLE} for e in first.json()["errors"]] == [UNAVAILABLE]
    else:
        assert first.json() == {"data": {"groups": {"totalCount": 3}}}
    for round_ in range(3):
        await new_group_id(client, name=f"Daarna {round_}")
    assert await client.data("{ groups { totalCount } }") == {"groups": {"totalCount": 6}}


async def test_a_statement_stopped_by_the_server_is_a_timeout_not_an_outage(
    on_postgresql: None, app_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory(plugins=[_Statements(*TIMED_OUT)])
    _, token = await make_user(app, "Johannes", "johannes@example.coop", admin=True)
    caplog.set_level(logging.INFO, logger="graphql_api")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        client = GraphQLClient(http, token)
        for _ in range(3):
            response = await client.post("{ timedOut }")
            assert response.status_code == 504, response.text
            [error] = response.json()["errors"]
            assert error["extensions"]["code"] == "TIMEOUT"
            assert "time limit" in error["message"] and "pg_sleep" not in error["message"]
        assert (await http.get("/health/ready")).status_code == 200
        metrics = (await http.get("/metrics")).text
        await new_group_id(client, name="Daarna")
    logged = [r for r in caplog.records if r.name.startswith("graphql_api")]
    assert not [r.getMessage() for r in logged if "unavailable" in r.getMessage()]
    assert all(r.exc_info is None and r.levelno < logging.ERROR for r in logged)
    counted = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "graphql_api_requests_total"
        and sample.labels.get("operation") == "anonymous"
    }
    assert counted.get("timeout") == 3, counted


async def test_a_database_refusing_connections_for_maintenance_is_503_and_not_ready(
    on_postgresql: None, client: GraphQLClient, app: Any, http: httpx.AsyncClient
) -> None:
    """``ALTER DATABASE … ALLOW_CONNECTIONS false`` (SQLSTATE 55000 on connecting) is an
    outage that passes, as a refused connection is; once allowed again, all is served."""
    await new_group_id(client, name="Vooraf")
    url = app.state.engine.url
    name = url.database
    admin = create_engine(
        url.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    async with admin.connect() as connection:
        await connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
    try:
        await app.state.engine.dispose()  # only new connections from here on
        response = await client.post("{ groups { totalCount } }")
        assert response.status_code == 503, response.text
        assert [{k: e[k] for k in UNAVAILABLE} for e in response.json()["errors"]] == [UNAVAILABLE]
        assert (await http.get("/health/ready")).status_code == 503
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        await admin.dispose()
    assert await client.data("{ groups { totalCount } }") == {"groups": {"totalCount": 1}}
    assert (await http.get("/health/ready")).status_code == 200
