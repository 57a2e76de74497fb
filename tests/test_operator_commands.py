"""The commands for a lost laptop, as an operator runs them, on both databases:
`graphql-api list-tokens`, `revoke-token` and `deactivate-user`. Each acts through the
service its GraphQL mutation uses, so a served application refuses the token afterwards
(within ``GRAPHQL_API_TOKEN_CACHE_SECONDS``) and the audit log records the change with its
actor: the system, as for every command. Each bad input is one line on stderr, exit
status 1, and changes no row."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from graphql_api.testing import cli, make_user, serving, unchanged
from graphql_api.users.models import ApiToken

CACHE_SECONDS = 1
"""How long the served application trusts a token it has checked."""
AUDIT = "{ auditLog(first: 10) { nodes { action subject details actor { name } } } }"


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    """The environment of commands, and of a served application, on the test database."""
    return {
        **os.environ,
        "GRAPHQL_API_DATABASE_URL": database_url,
        "GRAPHQL_API_DEV_MODE": "false",
        "GRAPHQL_API_TOKEN_CACHE_SECONDS": str(CACHE_SECONDS),
    }


async def token_ids(app: Starlette, user_id: int) -> list[int]:
    async with app.state.sessions() as session:
        found = await session.scalars(
            select(ApiToken.id).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
        )
        return list(found)


def answered(url: str, token: str, query: str = "{ me { permissions } }") -> httpx.Response:
    return httpx.post(
        f"{url}/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def assert_refused(done: subprocess.CompletedProcess[str], said: str) -> None:
    """Exit status 1 and one line on stderr, ``error: ...`` saying ``said``; no traceback."""
    shown = f"{done.args[3:]}: {done.stderr!r}"
    assert done.returncode == 1, shown
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, shown
    assert said in done.stderr, shown
    assert done.stdout == "", shown


async def test_list_tokens_shows_every_token_but_never_its_secret(
    app: Starlette, env: dict[str, str]
):
    anna, first = await make_user(app, "Anna de Vries", "anna@example.coop")
    await make_user(app, "Pieter Bakker", "pieter@example.coop")
    made = cli(env, "create-token", "--email", "anna@example.coop", "--name", "laptop")
    assert made.returncode == 0, made.stderr
    second = made.stdout.split()[-1]
    [first_id, second_id] = await token_ids(app, anna)
    assert cli(env, "revoke-token", str(first_id)).returncode == 0

    listed = cli(env, "list-tokens")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "USER", "NAME", "CREATED", "LAST", "USED", "EXPIRES", "REVOKED"]
    by_id = {int(row.split()[0]): row for row in rows}
    assert len(rows) == 3, "both of Anna's tokens and Pieter's"
    assert by_id[first_id].split()[1:3] == ["anna@example.coop", "first"]
    assert by_id[second_id].split()[1:3] == ["anna@example.coop", "laptop"]
    assert by_id[second_id].split()[-3:] == ["never", "never", "no"], "unused, lasting, valid"
    assert by_id[first_id].split()[-1] != "no", "the revoked one says when"
    for secret in (first, second):
        assert secret not in listed.stdout + listed.stderr
        assert hashlib.sha256(secret.encode()).hexdigest() not in listed.stdout

    annas = cli(env, "list-tokens", "--email", "ANNA@example.coop")
    assert annas.returncode == 0, annas.stderr
    assert sorted(int(row.split()[0]) for row in annas.stdout.splitlines()[1:]) == [
        first_id,
        second_id,
    ]


async def test_a_revoked_token_gets_401_and_the_revocation_is_audited(
    app: Starlette, env: dict[str, str]
):
    _, admin = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    anna, lost = await make_user(app, "Anna de Vries", "anna@example.coop")
    made = cli(env, "create-token", "--email", "anna@example.coop", "--name", "phone")
    kept = made.stdout.split()[-1]
    [lost_id, _] = await token_ids(app, anna)
    with serving(env) as (url, _):
        assert answered(url, lost).status_code == 200, "checked, and trusted for a while"
        revoked = cli(env, "revoke-token", str(lost_id))
        assert revoked.returncode == 0, revoked.stderr
        assert f"Revoked API token {lost_id}" in revoked.stderr
        await asyncio.sleep(CACHE_SECONDS + 0.2)
        assert answered(url, lost).status_code == 401
        assert answered(url, kept).status_code == 200, "Anna's other token still works"
        entries = answered(url, admin, AUDIT).json()["data"]["auditLog"]["nodes"]
    assert entries[0] == {
        "action": "apiToken.revoked",
        "subject": "first token",
        "details": {"tokenId": lost_id},
        "actor": None,  # the system: the command line
    }


async def test_a_deactivated_users_tokens_get_401_and_it_is_audited(
    app: Starlette, env: dict[str, str]
):
    _, admin = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    _, first = await make_user(app, "Anna de Vries", "anna@example.coop")
    second = cli(env, "create-token", "--email", "anna@example.coop", "--name", "phone")
    tokens = [first, second.stdout.split()[-1]]
    with serving(env) as (url, _):
        assert [answered(url, token).status_code for token in tokens] == [200, 200]
        done = cli(env, "deactivate-user", "Anna@Example.coop")
        assert done.returncode == 0, done.stderr
        assert "Deactivated anna@example.coop" in done.stderr
        await asyncio.sleep(CACHE_SECONDS + 0.2)
        assert [answered(url, token).status_code for token in tokens] == [401, 401]
        assert answered(url, admin).status_code == 200
        entries = answered(url, admin, AUDIT).json()["data"]["auditLog"]["nodes"]
    assert entries[0] == {
        "action": "user.updated",
        "subject": "anna@example.coop",
        "details": {"is_active": False, "role": "manager"},
        "actor": None,
    }
    listed = cli(env, "list-tokens", "--email", "anna@example.coop")
    assert "anna@example.coop (deactivated)" in listed.stdout


async def test_each_bad_input_is_one_line_and_changes_nothing(app: Starlette, env: dict[str, str]):
    await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    anna, _ = await make_user(app, "Anna de Vries", "anna@example.coop")
    pieter, _ = await make_user(app, "Pieter Bakker", "pieter@example.coop")
    [revoked] = await token_ids(app, anna)
    assert cli(env, "revoke-token", str(revoked)).returncode == 0
    assert cli(env, "deactivate-user", "pieter@example.coop").returncode == 0
    [unknown] = await token_ids(app, pieter)
    unknown += 1000
    bad: list[tuple[list[str], str]] = [
        (["revoke-token", str(unknown)], "No API token with this id."),
        (["revoke-token", str(revoked)], "This API token is already revoked."),
        (["revoke-token", "gapi_abc"], "'gapi_abc' is no token id"),
        (["revoke-token", "0"], "'0' is no token id"),
        (["deactivate-user", "nobody@example.coop"], "No user 'nobody@example.coop'."),
        (["deactivate-user", "pieter@example.coop"], "pieter@example.coop is deactivated already."),
        (["deactivate-user", "johannes@example.coop"], "Johannes Frölich is the last active admin"),
        (["list-tokens", "--email", "nobody@example.coop"], "No user 'nobody@example.coop'."),
    ]
    async with unchanged(app):
        with ThreadPoolExecutor(max_workers=4) as pool:
            done: list[Any] = list(pool.map(lambda run: cli(env, *run[0]), bad))
    for (_, said), result in zip(bad, done, strict=True):
        assert_refused(result, said)
