"""Creating users, issuing their API tokens and recognising a token on a request."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.kernel.errors import ErrorCode, Problems, UserInputError
from graphql_api.kernel.validation import clean_email, clean_text
from graphql_api.users.models import ApiToken, User

TOKEN_PREFIX = "gapi_"


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 is enough and allows lookup by hash.
    return hashlib.sha256(token.encode()).hexdigest()


async def create_user(
    session: AsyncSession, *, name: str, email: str, admin: bool = False
) -> tuple[User, str]:
    """Create an active user and return it with a new API token (shown once, stored hashed)."""
    problems = Problems()
    clean_name = clean_text(problems, ["name"], name, max_length=200, required=True)
    clean_mail = clean_email(problems, ["email"], email)
    if clean_mail is None and not problems.items:
        problems.add(["email"], ErrorCode.REQUIRED, "email is required.")
    problems.raise_if_any()
    assert clean_name is not None and clean_mail is not None
    taken = await session.scalar(select(User.id).where(User.email == clean_mail.lower()))
    if taken is not None:
        raise UserInputError.single(
            ["email"], ErrorCode.EMAIL_TAKEN, f"A user with e-mail {clean_mail} already exists."
        )
    user = User(name=clean_name, email=clean_mail.lower(), is_active=True, is_admin=admin)
    session.add(user)
    await session.flush()
    return user, await issue_token(session, user)


async def issue_token(session: AsyncSession, user: User) -> str:
    """Give the user one more API token and return it in clear text."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token)))
    await session.flush()
    return token


async def user_for_token(session: AsyncSession, token: str) -> User | None:
    """The active user owning this token, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return await session.scalar(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(token), User.is_active.is_(True))
    )


async def development_user(session: AsyncSession) -> User | None:
    """Who anonymous requests act as in development mode: the first active admin, or the
    first active user when there is no admin."""
    return await session.scalar(
        select(User)
        .where(User.is_active.is_(True))
        .order_by(User.is_admin.desc(), User.id)
        .limit(1)
    )


async def list_users(session: AsyncSession) -> list[User]:
    return list(await session.scalars(select(User).order_by(User.name, User.id)))
