"""SIGTERM ends `graphql-api serve` within GRAPHQL_API_SHUTDOWN_SECONDS, its WebSocket
connections closed with 1001 (going away), on SQLite and PostgreSQL.

Before, uvicorn closed WebSockets with 1012 and waited, with no limit, for every connection
and for the application's shutdown: a PostgreSQL `serve` once went on for over a minute
after SIGTERM. Now each process closes its connections with 1001 first, gives running
requests half of the shutdown time, and has ended by the shutdown time whatever still runs
(graphql_api/auth/sockets.py, ``stop_within``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets

from graphql_api.testing import GraphQLClient, free_port, make_user, new_group_id, serving

LIMIT = 5.0
"""GRAPHQL_API_SHUTDOWN_SECONDS of these servers."""
GROUPS = "subscription { groupChanged { eventId name } }"


@pytest.fixture
async def token(app_factory: Callable[..., Any]) -> str:
    _, made = await make_user(app_factory(), "Sanne de Vries", "sanne@example.coop", admin=True)
    return made


@asynccontextmanager
async def subscribed(url: str, token: str) -> AsyncIterator[Any]:
    async with websockets.connect(
        url.replace("http", "ws") + "/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
    ) as socket:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await socket.send(json.dumps(init))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        message = {"id": "1", "type": "subscribe", "payload": {"query": GROUPS}}
        await socket.send(json.dumps(message))
        await asyncio.sleep(0.5)  # the subscription runs
        yield socket


async def stopped(process: Any, socket: Any) -> tuple[int | None, float]:
    """SIGTERM: the code the connection is closed with, and the seconds until the process
    ended (at most ``LIMIT`` + 5 waited for; a process still running then is killed)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = None
    try:
        try:
            while True:
                await asyncio.wait_for(socket.recv(), LIMIT + 5)
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
        left = LIMIT + 5 - (time.monotonic() - started)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, max(left, 0.0))
        return code, time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_closes_websockets_going_away_and_ends_serve_in_time(
    server_env: dict[str, str], token: str, workers: str
):
    env = {**server_env, "GRAPHQL_API_SHUTDOWN_SECONDS": str(LIMIT)}
    with serving(env, "--workers", workers) as (url, process):
        async with subscribed(url, token) as socket:
            code, seconds = await stopped(process, socket)
    assert code == 1001
    assert process.poll() is not None and seconds < LIMIT, f"{seconds:.1f} s"


async def test_sigterm_ends_serve_in_time_while_a_delivery_hangs(
    server_env: dict[str, str], token: str
):
    """The in-process outbox worker is stuck on a webhook that never answers, and the
    application's shutdown waits for it: the process ends at the limit all the same."""
    reached = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reached.set()
        await reader.read()  # until the server goes away

    port = free_port()
    silent = await asyncio.start_server(never_answer, "127.0.0.1", port)
    env = {
        **server_env,
        "GRAPHQL_API_SHUTDOWN_SECONDS": str(LIMIT),
        "GRAPHQL_API_OUTBOX_IN_PROCESS_WORKER": "true",
        "GRAPHQL_API_OUTBOX_POLL_SECONDS": "0.1",
        "GRAPHQL_API_OUTBOX_HANDLER_TIMEOUT_SECONDS": "120",
        "GRAPHQL_API_WEBHOOK_URLS": f"http://127.0.0.1:{port}/hook",
        "GRAPHQL_API_WEBHOOK_TIMEOUT_SECONDS": "120",
    }
    try:
        with serving(env) as (url, process):
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                await new_group_id(GraphQLClient(http, token), name="Met webhook")
            await asyncio.wait_for(reached.wait(), 15)  # the delivery hangs now
            async with subscribed(url, token) as socket:
                code, seconds = await stopped(process, socket)
    finally:
        silent.close()
    assert code == 1001
    assert process.poll() is not None and seconds < LIMIT, f"{seconds:.1f} s"
