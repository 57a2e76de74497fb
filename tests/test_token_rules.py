"""Users and their API tokens (graphql_api.users.accounts and .tokens) on the test database: what
creating a user checks and stores, what a token looks like, which token is recognised, who
development mode acts as, and the same seen through HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from graphql_api.kernel.access import SYSTEM, Forbidden, Principal
from graphql_api.kernel.db import create_engine, create_sessionmaker, utcnow
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError
from graphql_api.testing import GraphQLClient, empty_tables, make_user, refused
from graphql_api.users.accounts import create_user, development_principal, list_users
from graphql_api.users.models import ApiToken, AuditEntry, User
from graphql_api.users.staff_roles import role_named
from graphql_api.users.tokens import (
    TOKEN_PREFIX,
    check_token,
    create_api_token,
    hash_token,
    issue_token,
    revoke_api_token,
)

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    """Sessions on the test database, no application; every table emptied afterwards."""
    engine = create_engine(database_url)
    yield create_sessionmaker(engine)
    await empty_tables(engine)
    await engine.dispose()


async def new_user(sessions: Sessions, admin: bool = False, **values: Any) -> tuple[User, str]:
    async with sessions() as session, session.begin():
        role = await role_named(session, "admin" if admin else "manager")
        assert role is not None
        return await create_user(session, SYSTEM, {**values, "role_id": role.id})


async def is_admin(sessions: Sessions, user_id: int) -> bool:
    async with sessions() as session:
        user = await session.get(User, user_id)
        admin = await role_named(session, "admin")
        assert user is not None and admin is not None
        return user.role_id == admin.id


async def refusal(sessions: Sessions, **values: Any) -> tuple[Problem, ...]:
    with pytest.raises(UserInputError) as refused:
        await new_user(sessions, **values)
    return refused.value.problems


async def token_owner(sessions: Sessions, token: str) -> str | None:
    async with sessions() as session:
        principal = await check_token(session, token)
        if not isinstance(principal, Principal):
            return None
        user = await session.get(User, principal.user_id)
        return None if user is None else user.email


def test_a_token_hash_is_the_hex_sha256_of_the_token():
    assert hash_token("gapi_abc") == hashlib.sha256(b"gapi_abc").hexdigest()
    assert len(hash_token("gapi_abc")) == 64


async def test_a_new_user_is_active_with_a_trimmed_name_and_a_lower_case_email(
    sessions: Sessions,
):
    user, token = await new_user(sessions, name="  Anna de Vries ", email=" Anna@Example.COOP ")
    assert (user.name, user.email, user.is_active) == ("Anna de Vries", "anna@example.coop", True)
    assert not await is_admin(sessions, user.id)
    admin, _ = await new_user(sessions, name="Bram", email="bram@example.coop", admin=True)
    assert await is_admin(sessions, admin.id)
    async with sessions() as session:
        stored = (await session.scalars(select(User).order_by(User.id))).all()
        assert [(u.name, u.email, u.is_active) for u in stored] == [
            ("Anna de Vries", "anna@example.coop", True),
            ("Bram", "bram@example.coop", True),
        ]
        hashes = list(await session.scalars(select(ApiToken.token_hash).order_by(ApiToken.id)))
    assert hashes[0] == hash_token(token)
    assert len(hashes) == 2


async def test_a_token_is_the_prefix_and_256_random_bits_and_only_its_hash_is_kept(
    sessions: Sessions,
):
    user, first = await new_user(sessions, name="Anna", email="anna@example.coop")
    async with sessions() as session, session.begin():
        _, second = await issue_token(session, SYSTEM, user, name="second")
    for token in (first, second):
        assert token.startswith(TOKEN_PREFIX)
        assert len(token) == len(TOKEN_PREFIX) + 43  # 32 bytes, URL-safe base64
    assert first != second
    async with sessions() as session:
        rows = (await session.execute(select(ApiToken.user_id, ApiToken.token_hash))).all()
    assert sorted(rows) == sorted([(user.id, hash_token(first)), (user.id, hash_token(second))])
    assert await token_owner(sessions, first) == await token_owner(sessions, second)
    assert await token_owner(sessions, first) == "anna@example.coop"


async def test_each_user_has_their_own_tokens(sessions: Sessions):
    _, anna = await new_user(sessions, name="Anna", email="anna@example.coop")
    _, bram = await new_user(sessions, name="Bram", email="bram@example.coop")
    assert await token_owner(sessions, anna) == "anna@example.coop"
    assert await token_owner(sessions, bram) == "bram@example.coop"


@pytest.mark.parametrize("name", [None, "", "   "])
async def test_a_user_needs_a_name(sessions: Sessions, name: str | None):
    problems = await refusal(sessions, name=name, email="anna@example.coop")
    assert problems == (Problem(("name",), ErrorCode.REQUIRED, "name is required."),)


async def test_a_name_has_at_most_200_characters(sessions: Sessions):
    longest, _ = await new_user(sessions, name="n" * 200, email="anna@example.coop")
    assert longest.name == "n" * 200
    problems = await refusal(sessions, name="n" * 201, email="bram@example.coop")
    assert problems == (
        Problem(
            ("name",),
            ErrorCode.TOO_LONG,
            "name is 201 characters long; at most 200 are allowed.",
        ),
    )


@pytest.mark.parametrize("email", [None, "", "  "])
async def test_a_user_needs_an_email(sessions: Sessions, email: str | None):
    problems = await refusal(sessions, name="Anna", email=email)
    assert problems == (Problem(("email",), ErrorCode.REQUIRED, "email is required."),)


async def test_a_bad_email_is_invalid_and_not_also_missing(sessions: Sessions):
    problems = await refusal(sessions, name="Anna", email="anna at example")
    assert problems == (
        Problem(("email",), ErrorCode.INVALID, "'anna at example' is not an e-mail address."),
    )


async def test_a_bad_name_and_a_bad_email_are_reported_together(sessions: Sessions):
    problems = await refusal(sessions, name="", email="anna")
    assert [(p.field, p.code) for p in problems] == [
        (("name",), ErrorCode.REQUIRED),
        (("email",), ErrorCode.INVALID),
    ]
    async with sessions() as session:
        assert await session.scalar(select(User.id)) is None


async def test_an_email_is_taken_whatever_its_case(sessions: Sessions):
    await new_user(sessions, name="Anna", email="anna@example.coop")
    await new_user(sessions, name="Bram", email="bram@example.coop")
    problems = await refusal(sessions, name="Anna 2", email=" ANNA@example.coop ")
    assert problems == (
        Problem(
            ("email",),
            ErrorCode.EMAIL_TAKEN,
            "A user with e-mail anna@example.coop already exists.",
        ),
    )
    async with sessions() as session:
        assert list(await session.scalars(select(User.name).order_by(User.id))) == [
            "Anna",
            "Bram",
        ]


async def test_only_a_prefixed_token_of_at_most_200_characters_is_looked_up(sessions: Sessions):
    user, token = await new_user(sessions, name="Anna", email="anna@example.coop")
    unprefixed = "x" * 40
    longest = TOKEN_PREFIX + "y" * (200 - len(TOKEN_PREFIX))
    too_long = TOKEN_PREFIX + "z" * (201 - len(TOKEN_PREFIX))
    async with sessions() as session, session.begin():
        session.add_all(
            ApiToken(user_id=user.id, token_hash=hash_token(t))
            for t in (unprefixed, longest, too_long)
        )
    assert await token_owner(sessions, token) == "anna@example.coop"
    assert await token_owner(sessions, longest) == "anna@example.coop"
    assert await token_owner(sessions, too_long) is None, "longer than 200: not looked up"
    assert await token_owner(sessions, unprefixed) is None, "without the prefix: not looked up"
    assert await token_owner(sessions, TOKEN_PREFIX + "unknown") is None
    assert await token_owner(sessions, "") is None


async def test_an_inactive_users_token_is_not_recognised(sessions: Sessions):
    anna, token = await new_user(sessions, name="Anna", email="anna@example.coop")
    async with sessions() as session, session.begin():
        await session.execute(update(User).where(User.id == anna.id).values(is_active=False))
    assert await token_owner(sessions, token) is None


async def test_development_mode_acts_as_the_first_active_admin(sessions: Sessions):
    async def acting() -> str | None:
        async with sessions() as session:
            principal = await development_principal(session)
            return None if principal.user_id is None else principal.name

    assert await acting() is None
    await new_user(sessions, name="Zus", email="zus@example.coop")
    await new_user(sessions, name="Anna", email="anna@example.coop")
    assert await acting() == "Zus", "no admin: the first active user"
    await new_user(sessions, name="Yvo", email="yvo@example.coop", admin=True)
    await new_user(sessions, name="Bram", email="bram@example.coop", admin=True)
    assert await acting() == "Yvo", "the first admin, not the first user nor the first name"
    async with sessions() as session, session.begin():
        await session.execute(update(User).where(User.name == "Yvo").values(is_active=False))
    assert await acting() == "Bram", "an inactive admin does not count"
    async with sessions() as session, session.begin():
        await session.execute(update(User).values(is_active=False))
    assert await acting() is None


async def test_users_are_listed_by_name_then_by_id(sessions: Sessions):
    for name, email in [
        ("Zus", "z@example.coop"),
        ("Anna", "a1@example.coop"),
        ("Bram", "b@example.coop"),
        ("Anna", "a2@example.coop"),
    ]:
        await new_user(sessions, name=name, email=email)
    async with sessions() as session:
        users = await list_users(session, SYSTEM)
    assert [(u.name, u.email) for u in users] == [
        ("Anna", "a1@example.coop"),
        ("Anna", "a2@example.coop"),
        ("Bram", "b@example.coop"),
        ("Zus", "z@example.coop"),
    ]


VIEWER = "{ viewer { name email isAdmin } }"


async def test_a_request_acts_as_the_owner_of_its_bearer_token(app: Any, http: httpx.AsyncClient):
    _, anna = await make_user(app, "Anna", "anna@example.coop")
    _, bram = await make_user(app, "Bram", "bram@example.coop", admin=True)
    assert await GraphQLClient(http, anna).data(VIEWER) == {
        "viewer": {"name": "Anna", "email": "anna@example.coop", "isAdmin": False}
    }
    assert (await GraphQLClient(http, bram).data(VIEWER))["viewer"]["name"] == "Bram"
    for token in (anna + "x", anna[len(TOKEN_PREFIX) :], "", TOKEN_PREFIX + "a" * 300):
        response = await GraphQLClient(http, token).post(VIEWER)
        assert response.status_code == 401, token
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_development_mode_acts_as_the_first_admin_over_http(app_factory: Any):
    app = app_factory(dev_mode=True)
    await make_user(app, "Anna", "anna@example.coop")
    await make_user(app, "Bram", "bram@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        data = await GraphQLClient(http, None).data(VIEWER)
    assert data == {"viewer": {"name": "Bram", "email": "bram@example.coop", "isAdmin": True}}


# Tokens made, narrowed, revoked and used (graphql_api.users.tokens) ----------------------


async def made(sessions: Sessions, actor: Principal, values: dict[str, Any], **kw: Any) -> Any:
    async with sessions() as session, session.begin():
        api_token, secret = await create_api_token(session, actor, values, **kw)
        return api_token, secret


async def token_refusal(
    sessions: Sessions, actor: Principal, values: dict[str, Any], **kw: Any
) -> tuple[Problem, ...]:
    with pytest.raises(UserInputError) as refused:
        await made(sessions, actor, values, **kw)
    return refused.value.problems


def as_user(user: User, *permissions: str, token_id: int | None = None) -> Principal:
    return Principal(user.name, frozenset(permissions), user_id=user.id, token_id=token_id)


async def audit_rows(sessions: Sessions) -> list[tuple[str, str, dict[str, Any]]]:
    async with sessions() as session:
        rows = await session.execute(
            select(AuditEntry.action, AuditEntry.subject, AuditEntry.details).order_by(
                AuditEntry.id
            )
        )
        return [tuple(row) for row in rows]


async def test_a_made_token_is_named_dated_narrowed_and_audited(sessions: Sessions):
    anna, _ = await new_user(sessions, name="Anna", email="anna@example.coop")
    later = utcnow() + timedelta(days=30)
    actor = as_user(anna, "groups.view", "members.manage")
    values = {"name": " sync ", "expires_at": later, "permissions": ["members.manage"] * 2}
    api_token, secret = await made(sessions, actor, values)
    assert (api_token.name, api_token.expires_at, api_token.permissions) == (
        "sync",
        later,
        ["members.manage"],
    )
    assert api_token.user_id == anna.id and api_token.token_hash == hash_token(secret)
    action, subject, details = (await audit_rows(sessions))[-1]
    assert (action, subject) == ("apiToken.created", "anna@example.coop: sync")
    assert details == {
        "tokenId": api_token.id,
        "expiresAt": later.isoformat(),
        "permissions": ["members.manage"],
    }


async def test_a_token_made_without_a_token_holds_all_its_owners_permissions(
    sessions: Sessions,
):
    anna, _ = await new_user(sessions, name="Anna", email="anna@example.coop")
    api_token, _ = await made(sessions, as_user(anna, "groups.view"), {"name": "all"})
    assert api_token.permissions is None and api_token.expires_at is None
    narrowed_actor = as_user(anna, "groups.view", token_id=7)
    copied, _ = await made(sessions, narrowed_actor, {"name": "copy"})
    assert copied.permissions == ["groups.view"], "a narrowed token makes narrowed tokens"


async def test_bad_token_values_are_refused_with_their_field_and_reason(sessions: Sessions):
    anna, _ = await new_user(sessions, name="Anna", email="anna@example.coop")
    actor = as_user(anna, "groups.view")
    past = utcnow() - timedelta(seconds=1)
    far = utcnow() + timedelta(days=3 * 365 + 1)
    assert await token_refusal(sessions, actor, {"name": "t", "expires_at": past}) == (
        Problem(("expires_at",), ErrorCode.INVALID, "The expiry must lie in the future."),
    )
    assert await token_refusal(sessions, actor, {"name": "t", "expires_at": far}) == (
        Problem(("expires_at",), ErrorCode.INVALID, "A token lives at most three years."),
    )
    naive = {"name": "t", "expires_at": datetime(2030, 1, 1)}
    assert await token_refusal(sessions, actor, naive) == (
        Problem(
            ("expires_at",),
            ErrorCode.INVALID,
            "The expiry needs its time zone, e.g. 2030-01-01T00:00:00Z.",
        ),
    )
    assert await token_refusal(sessions, actor, {"name": " "}) == (
        Problem(("name",), ErrorCode.REQUIRED, "name is required."),
    )
    beyond = {"name": "t", "permissions": ["users.manage", "contacts.view", "groups.view"]}
    assert await token_refusal(sessions, actor, beyond) == (
        Problem(
            ("permissions",),
            ErrorCode.FORBIDDEN,
            "A token cannot hold what you lack: contacts.view, users.manage.",
        ),
    )
    assert [row[0] for row in await audit_rows(sessions)] == [
        "user.created",
        "apiToken.created",
    ], "only Anna's first token; nothing of the refused ones"


async def test_a_token_for_someone_else_needs_users_manage_and_an_existing_user(
    sessions: Sessions,
):
    anna, _ = await new_user(sessions, name="Anna", email="anna@example.coop")
    bram, _ = await new_user(sessions, name="Bram", email="bram@example.coop")
    with pytest.raises(Forbidden) as refused:
        await made(sessions, as_user(anna, "groups.view"), {"name": "t"}, owner_id=bram.id)
    assert refused.value.permission == "users.manage"
    own, _ = await made(sessions, as_user(anna), {"name": "mine"}, owner_id=anna.id)
    assert own.user_id == anna.id, "one's own id needs nothing"
    for_bram, _ = await made(sessions, SYSTEM, {"name": "cli"}, owner_id=bram.id)
    assert for_bram.user_id == bram.id
    missing = Problem(("user_id",), ErrorCode.NOT_FOUND, "No user with this id.")
    assert await token_refusal(sessions, SYSTEM, {"name": "t"}, owner_id=999_999) == (missing,)
    assert await token_refusal(sessions, SYSTEM, {"name": "t"}) == (missing,), (
        "the system owns no tokens"
    )


async def test_revoking_is_for_the_owner_or_users_manage_once(sessions: Sessions):
    anna, _ = await new_user(sessions, name="Anna", email="anna@example.coop")
    bram, _ = await new_user(sessions, name="Bram", email="bram@example.coop")
    api_token, _ = await made(sessions, as_user(anna), {"name": "sync"})

    async def revoke(actor: Principal, token_id: int) -> Any:
        async with sessions() as session, session.begin():
            return await revoke_api_token(session, actor, token_id)

    not_found = Problem(("token_id",), ErrorCode.NOT_FOUND, "No API token with this id.")
    for actor, token_id in ((as_user(bram), api_token.id), (as_user(anna), 999_999)):
        with pytest.raises(UserInputError) as refused:
            await revoke(actor, token_id)
        assert refused.value.problems == (not_found,)
    revoked = await revoke(as_user(bram, "users.manage"), api_token.id)
    assert revoked.revoked_at is not None
    assert (await audit_rows(sessions))[-1] == (
        "apiToken.revoked",
        "sync",
        {"tokenId": api_token.id},
    )
    with pytest.raises(UserInputError) as again:
        await revoke(as_user(anna), api_token.id)
    assert again.value.problems == (
        Problem(("token_id",), ErrorCode.ALREADY_REVOKED, "This API token is already revoked."),
    )


async def test_a_narrowed_token_holds_no_more_than_its_owners_role(sessions: Sessions):
    async with sessions() as session, session.begin():
        viewer = await role_named(session, "viewer")
        assert viewer is not None
        pieter, _ = await create_user(
            session, SYSTEM, {"name": "Pieter", "email": "p@example.coop", "role_id": viewer.id}
        )
        api_token, secret = await issue_token(
            session, SYSTEM, pieter, name="wide", permissions=["groups.view", "users.manage"]
        )
    async with sessions() as session:
        principal = await check_token(session, secret)
    assert isinstance(principal, Principal)
    assert (principal.name, principal.user_id, principal.token_id) == (
        "Pieter",
        pieter.id,
        api_token.id,
    )
    assert principal.permissions == {"groups.view"}


async def test_last_used_is_written_when_older_than_asked(sessions: Sessions):
    _, secret = await new_user(sessions, name="Anna", email="anna@example.coop")

    async def use(after: timedelta | None) -> Any:
        async with sessions() as session, session.begin():
            await check_token(session, secret, note_use_after=after)
        async with sessions() as session:
            return await session.scalar(select(ApiToken.last_used_at))

    assert await use(None) is None, "not asked to note it"
    first = await use(timedelta(minutes=1))
    assert first is not None
    assert await use(timedelta(minutes=1)) == first, "less than a minute ago: kept"
    async with sessions() as session, session.begin():
        await session.execute(update(ApiToken).values(last_used_at=first - timedelta(minutes=2)))
    assert await use(timedelta(minutes=1)) > first - timedelta(minutes=2)


async def test_an_expiry_without_a_time_zone_is_refused_not_a_server_fault(
    app: Any, client: GraphQLClient
):
    """Found by tests/test_fuzz.py: a date alone parsed as a time without a zone, which
    could not be compared with now."""
    mutation = 'mutation($e: DateTime) { createApiToken(input: {name: "t", expiresAt: $e}) { errors { field code } } }'
    for expiry in ["9999-12-31", "2030-01-01T00:00:00"]:
        errors = await refused(app, client, mutation, {"e": expiry})
        assert errors == [{"field": ["input", "expiresAt"], "code": "INVALID"}]
