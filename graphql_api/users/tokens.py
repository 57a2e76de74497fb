"""API tokens: issuing, narrowing, expiring, revoking, and recognising one on a request."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.errors import ErrorCode, Problems, UserInputError
from graphql_api.kernel.validation import clean_text
from graphql_api.kernel.writing import is_busy
from graphql_api.users.audit import record
from graphql_api.users.models import ApiToken, StaffRole, User
from graphql_api.users.staff_roles import known_permissions

logger = logging.getLogger("graphql_api.auth")

TOKEN_PREFIX = "gapi_"
MAX_TOKEN_LENGTH = 200
LONGEST_LIFETIME = timedelta(days=3 * 365)


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 is enough and allows lookup by hash.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenRefused:
    """Why a token opens nothing; the reason is safe to tell the client."""

    reason: str


UNKNOWN_TOKEN = TokenRefused("Missing or invalid API token: send 'Authorization: Bearer <token>'.")


def principal_of(user: User, role: StaffRole, token: ApiToken | None = None) -> Principal:
    """What a user may do through ``token``: their role's permissions, narrowed by the
    token's own list when it has one."""
    granted = Principal(name=user.name, permissions=frozenset(role.permissions))
    if token is not None and token.permissions is not None:
        granted = Principal(
            name=user.name,
            permissions=frozenset(p for p in token.permissions if granted.can(p)),
        )
    return Principal(
        name=user.name,
        permissions=granted.permissions,
        user_id=user.id,
        token_id=token.id if token else None,
    )


async def active_user_principal(session: AsyncSession, user_id: int | None) -> Principal | None:
    """What the user ``user_id`` may do now, by their role (work they started later, such
    as a job or a download link, runs with no more); None when they are gone or
    deactivated."""
    if user_id is None:
        return None
    found = (
        await session.execute(
            select(User, StaffRole)
            .join(StaffRole, User.role_id == StaffRole.id)
            .where(User.id == user_id)
        )
    ).first()
    if found is None or not found[0].is_active:
        return None
    return principal_of(*found)


async def check_token(
    session: AsyncSession, token: str, *, note_use_after: timedelta | None = None
) -> Principal | TokenRefused:
    """The principal a bearer token stands for, or why it stands for nobody.

    With ``note_use_after``, a token whose ``last_used_at`` is older than that gets it set
    to now: a write on every request would cost more than the answer. That note is the
    request's least concern: on SQLite, where a long write (a chunk of an import) holds the
    database's one write lock, it is left for a later request rather than failing this
    one, which may only read."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return UNKNOWN_TOKEN
    found = (
        await session.execute(
            select(ApiToken, User, StaffRole)
            .join(User, ApiToken.user_id == User.id)
            .join(StaffRole, User.role_id == StaffRole.id)
            .where(ApiToken.token_hash == hash_token(token))
        )
    ).first()
    if found is None:
        return UNKNOWN_TOKEN
    api_token, user, role = found
    if api_token.revoked_at is not None:
        return TokenRefused(
            f"This API token was revoked at {api_token.revoked_at:%Y-%m-%d %H:%M} UTC."
        )
    if api_token.expires_at is not None and api_token.expires_at <= utcnow():
        return TokenRefused(f"This API token expired at {api_token.expires_at:%Y-%m-%d %H:%M} UTC.")
    if not user.is_active:
        return TokenRefused("The user of this API token is deactivated.")
    now = utcnow()
    last_used = api_token.last_used_at
    if note_use_after is not None and (last_used is None or last_used < now - note_use_after):
        try:
            async with session.begin_nested():
                await session.execute(
                    update(ApiToken).where(ApiToken.id == api_token.id).values(last_used_at=now)
                )
        except OperationalError as error:
            if not is_busy(error):
                raise
            logger.info("token %s: its use is noted later (the database is busy)", api_token.id)
    return principal_of(user, role, api_token)


async def issue_token(
    session: AsyncSession,
    actor: Principal,
    user: User,
    *,
    name: str,
    expires_at: datetime | None = None,
    permissions: list[str] | None = None,
) -> tuple[ApiToken, str]:
    """Store a new token of ``user`` and return it with its secret, shown this once."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    api_token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(secret),
        expires_at=expires_at,
        permissions=permissions,
    )
    session.add(api_token)
    await session.flush()
    record(
        session,
        actor,
        "apiToken.created",
        f"{user.email}: {name}",
        tokenId=api_token.id,
        expiresAt=expires_at.isoformat() if expires_at else None,
        permissions=permissions,
    )
    return api_token, secret


async def create_api_token(
    session: AsyncSession, actor: Principal, values: Mapping[str, Any], owner_id: int | None = None
) -> tuple[ApiToken, str]:
    """A token for the actor (or, with ``users.manage``, for ``owner_id``), named, with an
    optional expiry and an optional narrower set of permissions.

    A token never holds more than the actor: a narrowed token makes only tokens narrowed
    as far, and a permission the actor lacks cannot be asked for."""
    if owner_id is not None and owner_id != actor.user_id:
        actor.require("users.manage")
    owner = await _owner(session, actor, owner_id)
    problems = Problems()
    name = clean_text(
        problems, ["name"], values.get("name"), max_length=100, required=True, name=True
    )
    expires_at = values.get("expires_at")
    now = utcnow()
    if expires_at is not None and expires_at.utcoffset() is None:
        # An instant needs its offset: "2030-01-01" could be any of 26 hours.
        problems.add(
            ["expires_at"],
            ErrorCode.INVALID,
            "The expiry needs its time zone, e.g. 2030-01-01T00:00:00Z.",
        )
    elif expires_at is not None and expires_at <= now:
        problems.add(["expires_at"], ErrorCode.INVALID, "The expiry must lie in the future.")
    elif expires_at is not None and expires_at > now + LONGEST_LIFETIME:
        problems.add(["expires_at"], ErrorCode.INVALID, "A token lives at most three years.")
    permissions = values.get("permissions")
    if permissions is not None:
        permissions = _narrowed(problems, session, actor, permissions)
    elif actor.token_id is not None and owner_id is None:
        permissions = sorted(actor.permissions)
    problems.raise_if_any()
    assert name is not None
    return await issue_token(
        session, actor, owner, name=name, expires_at=expires_at, permissions=permissions
    )


def _narrowed(
    problems: Problems, session: AsyncSession, actor: Principal, permissions: list[str]
) -> list[str]:
    known = known_permissions(problems, session, permissions)
    beyond = [p for p in known if not actor.can(p)]
    if beyond:
        problems.add(
            ["permissions"],
            ErrorCode.FORBIDDEN,
            f"A token cannot hold what you lack: {', '.join(beyond)}.",
        )
    return known


async def _owner(session: AsyncSession, actor: Principal, owner_id: int | None) -> User:
    user_id = owner_id if owner_id is not None else actor.user_id
    user = await session.get(User, user_id) if user_id is not None else None
    if user is None:
        raise UserInputError.single(["user_id"], ErrorCode.NOT_FOUND, "No user with this id.")
    return user


async def revoke_api_token(session: AsyncSession, actor: Principal, token_id: int) -> ApiToken:
    """Revoke one of the actor's tokens (anyone's, with ``users.manage``); it stops working
    within ``GRAPHQL_API_TOKEN_CACHE_SECONDS`` (auth/token_cache.py)."""
    api_token = await session.get(ApiToken, token_id, with_for_update=True)
    if api_token is None or (api_token.user_id != actor.user_id and not actor.can("users.manage")):
        raise UserInputError.single(["token_id"], ErrorCode.NOT_FOUND, "No API token with this id.")
    if api_token.revoked_at is not None:
        raise UserInputError.single(
            ["token_id"], ErrorCode.ALREADY_REVOKED, "This API token is already revoked."
        )
    api_token.revoked_at = utcnow()
    await session.flush()
    record(session, actor, "apiToken.revoked", api_token.name, tokenId=api_token.id)
    return api_token


async def list_api_tokens(session: AsyncSession, actor: Principal) -> list[ApiToken]:
    """The actor's own tokens, newest first; revoked and expired ones included."""
    if actor.user_id is None:
        return []
    return list(
        await session.scalars(
            select(ApiToken).where(ApiToken.user_id == actor.user_id).order_by(ApiToken.id.desc())
        )
    )


@requires("users.manage")
async def every_api_token(
    session: AsyncSession, actor: Principal, email: str | None = None
) -> list[tuple[ApiToken, User]]:
    """Every user's tokens with their user (only those of the user with ``email``, when
    given), oldest first, revoked and expired ones included: what an operator looks
    through when a laptop is lost."""
    tokens = select(ApiToken, User).join(User, ApiToken.user_id == User.id).order_by(ApiToken.id)
    if email is not None:
        tokens = tokens.where(User.email == email.strip().lower())
    return [(api_token, user) for api_token, user in (await session.execute(tokens)).all()]
