"""The time budget of a request and a client that leaves (docs/reliability.md, "Time
budget"): the work stops, its statement with it, and the connections are usable after.

A test plugin adds ``slow``, a query field whose one statement runs for a minute unless
stopped: ``pg_sleep`` on PostgreSQL; on SQLite a count to 200 million inside an UPDATE, which
holds SQLite's write lock while it runs, so a write after it shows whether it still runs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import strawberry
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.graphql_base.context import Info
from graphql_api.plugin import hookimpl
from graphql_api.testing import GraphQLClient, make_user, new_group_id

SLOW_SQL = {
    "postgresql": "SELECT 1 FROM pg_sleep(60)",
    "sqlite": """UPDATE staff_roles SET name = name WHERE (
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000000)
        SELECT count(*) FROM c) < 0""",
}
SLEEPING = text(
    """SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
       AND state = 'active' AND query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()"""
)
"""The test plugin's statements still running on the PostgreSQL server."""
BUDGET = 1.0


class _Slow:
    """The ``slow`` field; ``running`` is set once its statement is sent."""

    PLUGIN_NAME = "slow_statement"

    def __init__(self) -> None:
        self.running = asyncio.Event()

    @hookimpl
    def query_fields(self) -> list[Any]:
        plugin = self

        async def slow(info: Info) -> int:
            async def run(session: AsyncSession) -> int:
                plugin.running.set()
                await session.execute(text(SLOW_SQL[session.bind.dialect.name]))
                return 1

            return await info.context.db.run(run)

        return [strawberry.field(resolver=slow, name="slow", description="Runs for a minute.")]


async def _slow_app(app_factory: Callable[..., Any], budget: float) -> tuple[Any, _Slow, str]:
    """An app with the ``slow`` field and this budget, and an admin's token."""
    plugin = _Slow()
    app = app_factory(plugins=[plugin], request_timeout_seconds=budget)
    _, token = await make_user(app, "Johannes", "johannes@example.coop", admin=True)
    return app, plugin, token


async def _still_running(app: Any) -> int:
    """How many of the plugin's statements still run: counted on PostgreSQL's server; on
    SQLite, one holds the write lock, so a write of another connection cannot begin."""
    if app.state.engine.dialect.name == "postgresql":
        async with app.state.engine.connect() as connection:
            return int(await connection.scalar(SLEEPING))
    async with app.state.engine.connect() as connection:
        await connection.execute(text("PRAGMA busy_timeout = 100"))
        try:
            await connection.execute(text("BEGIN IMMEDIATE"))
        except Exception:  # "database is locked": the UPDATE still runs
            return 1
        await connection.execute(text("ROLLBACK"))
        return 0


async def test_a_request_over_its_budget_is_stopped_and_answered_in_time(
    app_factory: Callable[..., Any],
) -> None:
    app, _, token = await _slow_app(app_factory, BUDGET)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        started = time.perf_counter()
        response = await http.post(
            "/graphql",
            json={"query": "{ slow }"},
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/graphql-response+json",
            },
        )
        took = time.perf_counter() - started
        assert response.status_code == 504
        assert (
            response.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
        )
        assert response.json() == {
            "errors": [
                {
                    "message": "The request took longer than 1 s, the limit, and was stopped; "
                    "nothing it would have changed was kept. Ask for less at once.",
                    "extensions": {"code": "TIMEOUT"},
                }
            ]
        }
        assert BUDGET <= took < BUDGET + 2.0, took
        assert await _still_running(app) == 0
        # The pool is not poisoned: reads and writes go on, on every connection it has.
        client = GraphQLClient(http, token)
        for round_ in range(5):
            assert (await client.data("{ me { permissions } }"))["me"]["permissions"]
            await new_group_id(client, name=f"Daarna {round_}")


async def test_a_client_that_leaves_stops_its_request(app_factory: Callable[..., Any]) -> None:
    """Over a real HTTP server (uvicorn): the client sends its request and hangs up while
    the statement runs; the statement stops long before the budget (30 s) would stop it."""
    app, plugin, token = await _slow_app(app_factory, 30.0)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None)
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        body = json.dumps({"query": "{ slow }"}).encode()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        await asyncio.wait_for(plugin.running.wait(), 5)
        await asyncio.sleep(0.2)
        assert await _still_running(app) == 1, "the statement runs while the client waits"
        writer.close()
        left = time.perf_counter()
        for _ in range(60):
            if not await _still_running(app):
                break
            await asyncio.sleep(0.05)
        assert time.perf_counter() - left < 3.0, "the statement ran on after the client left"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            me = await GraphQLClient(http, token).data("{ me { permissions } }")
        assert me["me"]["permissions"]
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
