"""The service as an operator runs it: `graphql-api` commands and a real `graphql-api serve`
in a subprocess, for what ASGI in-process cannot show (WebSockets, workers, signals, the
command line)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import IO, Any

import httpx
import pytest
import websockets

from graphql_api.kernel.db import create_engine
from graphql_api.testing.fixtures import empty_tables

CLI = [sys.executable, "-m", "graphql_api.cli"]


def cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``graphql-api ARGS`` in the environment ``env``, its output captured, as an operator
    runs it."""
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def subscribed(
    url: str, token: str, query: str, variables: Mapping[str, Any]
) -> websockets.ClientConnection:
    """A WebSocket to the ``serve`` at ``url`` (``http://...``) that has sent ``query``, a
    subscription, as the user of ``token`` (graphql-transport-ws, acknowledged); read its
    messages with ``recv()``."""
    socket = await websockets.connect(
        url.replace("http", "ws", 1) + "/graphql",
        subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
    )
    try:
        init = {"Authorization": f"Bearer {token}"}
        await socket.send(json.dumps({"type": "connection_init", "payload": init}))
        acknowledged = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert acknowledged["type"] == "connection_ack", acknowledged
        payload = {"query": query, "variables": dict(variables)}
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    except BaseException:
        await socket.close()
        raise
    return socket


def debian_program(program: str, package: str) -> str:
    """The path of ``program``, from Debian's ``package`` (nginx and PgBouncer live in
    /usr/sbin, which a user's PATH may lack); skips the test without it, but fails it in CI
    (``CI=true``), whose .ci/run installs it."""
    found = shutil.which(program, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                f"CI runs this test: .ci/run installs {package} (apt-get install {package})"
            )
        pytest.skip(f"this test needs {program} (apt-get install {package})")
    return found


def free_port() -> int:
    """A port free on loopback now, so servers of parallel runs do not collide."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(
    env: Mapping[str, str], *arguments: str, log: IO[str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`graphql-api serve` (with more ``arguments``) on a free port, until the block ends:
    its URL and process. Its log goes to the file ``log``, or else to the process's stderr,
    to read once the block is over; a server that logs more than a pipe holds (64 KiB)
    stops until it is read, so a long or loud run gives a file."""
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), *arguments],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log or subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server_env(database_url: str) -> dict[str, str]:
    """The environment of `graphql-api` commands on the test database."""
    return {**os.environ, "GRAPHQL_API_DATABASE_URL": database_url, "GRAPHQL_API_DEV_MODE": "false"}


def new_token(env: Mapping[str, str]) -> str:
    """The token of a new user "Test" (a manager), made with `graphql-api create-user`."""
    made = cli(env, "create-user", "--name", "Test", "--email", "t@example.coop")
    assert made.returncode == 0, made.stderr
    return made.stdout.split()[-1]


@pytest.fixture(scope="module")
async def _emptied_after_module(database_url: str) -> AsyncIterator[None]:
    """Empties the tables after a module's tests: async work, kept out of the blocking
    ``server``."""
    yield
    engine = create_engine(database_url)
    await empty_tables(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
def server(server_env: dict[str, str], _emptied_after_module: None) -> Iterator[tuple[str, str]]:
    """`graphql-api serve` on a free port and the test database, with the demo data and
    the token of a user "Test": (URL, token). One server serves a test module (starting
    one takes seconds), so its tests share its data; the tables are emptied after them."""
    seeded = cli(server_env, "seed", "--demo")
    assert seeded.returncode == 0, seeded.stderr
    token = new_token(server_env)
    with serving(server_env) as (url, _):
        yield url, token
