"""PostgreSQL behind PgBouncer in transaction mode: ``GRAPHQL_API_DATABASE_URL`` names the
pooler, ``GRAPHQL_API_DATABASE_DIRECT_URL`` the database itself (docs/deployment.md).

A real PgBouncer (Debian's package) lends each transaction whichever of its two server
connections is free, to two ``serve`` processes and the command line at once, so anything
the service left on a server connection past its transaction (a named prepared statement,
a scratch table's rows, a ``LISTEN``) would meet another client's transaction:

- ``test_two_processes_through_pgbouncer_keep_everything_exact``: concurrent contact
  edits, list changes above the scratch table's threshold and reads through both
  processes answer without an error; stored membership is exact afterwards; and a
  subscriber of one process hears a change committed through the other at once (its
  ``LISTEN`` goes direct; the poll is set to a minute).
- ``test_the_statement_timeout_holds_through_the_pooler``: the pooler refuses the
  timeout as a startup parameter, so it is set in each transaction; it still cancels.
- ``test_without_the_direct_url_named_statements_collide``: the failure the setting
  prevents, with the default engine through the same pooler.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from graphql_api.kernel.db import create_engine, sqlstate
from graphql_api.testing import (
    GraphQLClient,
    cli,
    debian_program,
    free_port,
    new_contact_id,
    new_group_id,
    new_token,
    serving,
    subscribed,
)

SERVER_CONNECTIONS = 2
"""PgBouncer's server connections for the test database: fewer than its clients, so
consecutive transactions of one client land on different ones."""
WAIT = 10.0
CHANGE = """
mutation($groupId: ID!, $from: MemberListInput, $remove: Boolean!) {
  add: addGroupMembers(groupId: $groupId, from: $from) @skip(if: $remove) {
    changedCount errors { code message }
  }
  remove: removeGroupMembers(groupId: $groupId, from: $from) @include(if: $remove) {
    changedCount errors { code message }
  }
}"""
MOVE = """mutation($id: ID!, $input: ContactInput!) {
  updateContact(id: $id, input: $input) { contact { postalCode } errors { code message } }
}"""
READ = """query($id: ID!) { group(id: $id) {
  memberCount members(first: 50) { nodes { lastName groups { name } } } } }"""
MEMBERSHIPS = """subscription($groupId: ID!) {
  membershipChanged(groupId: $groupId) { action contactId } }"""


def _postal(prefix: str) -> dict[str, Any]:
    return {"condition": {"field": "postalCode", "op": "STARTS_WITH", "value": prefix}}


@pytest.fixture
def pooled_url(database_url: str) -> Iterator[str]:
    """The test database through a PgBouncer in transaction mode, started for the test."""
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("PgBouncer pools PostgreSQL connections")
    binary = debian_program("pgbouncer", "pgbouncer")
    direct = make_url(database_url)
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        # PgBouncer will not run as root: it switches to postgres, who must write here.
        os.chmod(folder, 0o777)
        config = Path(folder, "pgbouncer.ini")
        config.write_text(
            f"[databases]\n{direct.database} = host={direct.host or '127.0.0.1'} "
            f"port={direct.port or 5432} user={direct.username or 'postgres'}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\n"
            f"default_pool_size = {SERVER_CONNECTIONS}\nmax_client_conn = 500\n"
            f"logfile = {folder}/pgbouncer.log\npidfile = {folder}/pgbouncer.pid\n"
        )
        user = ["-u", "postgres"] if os.geteuid() == 0 else []
        # It logs to the file: an unread pipe would fill up and stop it (and every client).
        process = subprocess.Popen(
            [binary, "--quiet", *user, str(config)], stderr=subprocess.DEVNULL
        )
        try:
            _wait_for_port(port)
            yield direct.set(port=port, host="127.0.0.1").render_as_string(hide_password=False)
        finally:
            process.terminate()  # PgBouncer's immediate shutdown
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_port(port: int) -> None:
    import socket
    import time

    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("PgBouncer did not start")


@pytest.fixture
def pooled_env(database_url: str, pooled_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "GRAPHQL_API_DATABASE_URL": pooled_url,
        "GRAPHQL_API_DATABASE_DIRECT_URL": database_url,
        "GRAPHQL_API_DEV_MODE": "false",
        # Only NOTIFY, through the direct connection, can wake a subscriber in time.
        "GRAPHQL_API_FEED_POLL_SECONDS": "60",
    }


@pytest.fixture
def served(pooled_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """Two ``serve`` processes through the pooler (their logs in files: a pipe fills up
    and stops a server), and a token made by the command line, through the pooler too."""
    token = new_token(pooled_env)
    with (
        open(tmp_path / "first.log", "w") as first_log,
        open(tmp_path / "second.log", "w") as second_log,
        serving(pooled_env, log=first_log) as (first, _),
        serving(pooled_env, log=second_log) as (second, _),
    ):
        yield first, second, token


@pytest.fixture
async def two_servers(served: tuple[str, str, str]) -> AsyncIterator[list[GraphQLClient]]:
    first, second, token = served
    async with (
        httpx.AsyncClient(base_url=first, timeout=30) as one,
        httpx.AsyncClient(base_url=second, timeout=30) as other,
    ):
        yield [GraphQLClient(one, token), GraphQLClient(other, token)]


async def test_two_processes_through_pgbouncer_keep_everything_exact(
    two_servers: list[GraphQLClient], pooled_env: dict[str, str]
):
    one, other = two_servers
    contacts = await asyncio.gather(
        *(
            new_contact_id(two_servers[i % 2], lastName=f"Lid {i}", postalCode=f"10{i % 3}1AB")
            for i in range(240)
        )
    )
    target = await new_group_id(one, name="Nieuwsbrief")
    nearby = await new_group_id(other, name="1001", filter=_postal("1001"))
    union = await new_group_id(one, name="Iedereen", composedOfIds=[target, nearby])
    socket = await subscribed(str(one.http.base_url), one.token, MEMBERSHIPS, {"groupId": target})
    await asyncio.sleep(0.5)  # the subscription reads after the newest event once it runs
    try:
        # Through the other process: the subscriber's process hears it by NOTIFY.
        added = await other.data(
            CHANGE, {"groupId": target, "remove": False, "from": {"filter": _postal("10")}}
        )
        assert added["add"] == {"changedCount": 240, "errors": []}
        message = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
        assert message["type"] == "next", message
        assert message["payload"]["data"]["membershipChanged"]["action"] == "ADDED"
    finally:
        await socket.close()

    async def edits(client: GraphQLClient, offset: int) -> None:
        for i in range(offset, 240, 8):
            moved = await client.data(
                MOVE, {"id": contacts[i], "input": {"postalCode": f"10{(i + 1) % 3}1AB"}}
            )
            assert moved["updateContact"]["errors"] == []

    async def lists(client: GraphQLClient, prefix: str) -> None:
        for remove in (True, False, True):
            changed = await client.data(
                CHANGE, {"groupId": target, "remove": remove, "from": {"filter": _postal(prefix)}}
            )
            assert changed["remove" if remove else "add"]["errors"] == []

    async def reads(client: GraphQLClient) -> None:
        for _ in range(10):
            for group in (target, nearby, union):
                assert (await client.execute(READ, {"id": group})).get("errors") is None

    await asyncio.gather(
        *(edits(two_servers[k % 2], k) for k in range(8)),
        lists(one, "100"),
        lists(other, "102"),
        reads(one),
        reads(other),
    )
    checked = await asyncio.to_thread(cli, pooled_env, "check-membership")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (
        await named_statements(pooled_env["GRAPHQL_API_DATABASE_URL"]) == [0] * SERVER_CONNECTIONS
    )


async def named_statements(pooled_url: str) -> list[int]:
    """The named prepared statements left on each of the pooler's server connections
    (transactions held at once, so that each gets a server connection of its own): none, or
    the server's memory would grow with the traffic."""
    engine = create_engine(pooled_url, transaction_pooled=True)

    async def count() -> int:
        async with engine.begin() as connection:
            left = await connection.scalar(text("SELECT count(*) FROM pg_prepared_statements"))
            await connection.execute(text("SELECT pg_sleep(0.3)"))
            return left

    try:
        return list(await asyncio.gather(*(count() for _ in range(SERVER_CONNECTIONS))))
    finally:
        await engine.dispose()


async def test_the_statement_timeout_holds_through_the_pooler(pooled_url: str):
    engine = create_engine(pooled_url, transaction_pooled=True, statement_timeout_seconds=0.2)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
            with pytest.raises(DBAPIError) as cancelled:
                await connection.execute(text("SELECT pg_sleep(2)"))
        assert sqlstate(cancelled.value) == "57014"
    finally:
        await engine.dispose()


async def test_without_the_direct_url_named_statements_collide(pooled_url: str):
    """The default engine keeps named prepared statements on the server connection; the
    pooler hands that connection to another client, whose statement of the same name
    collides (or whose own is missing). Several engines stand for several processes."""
    engines = [create_engine(pooled_url, pool_size=1, max_overflow=0) for _ in range(4)]

    async def queries(engine: Any, seed: int) -> None:
        for i in range(30):
            async with engine.connect() as connection:
                await connection.execute(text(f"SELECT {seed} + :i AS n"), {"i": i})

    try:
        failures = await asyncio.gather(
            *(queries(engine, k) for k, engine in enumerate(engines)), return_exceptions=True
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert any("prepared statement" in str(failure) for failure in failures), failures
