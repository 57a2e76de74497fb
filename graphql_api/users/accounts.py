"""Staff users: creating, changing and deactivating them, and who development mode is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.kernel.access import EVERY_PERMISSION, Principal, requires
from graphql_api.kernel.errors import ErrorCode, Problems, UserInputError
from graphql_api.kernel.validation import clean_email, clean_text
from graphql_api.users.audit import record
from graphql_api.users.models import StaffRole, User
from graphql_api.users.staff_roles import ADMIN, is_admin_role, role_by_id
from graphql_api.users.tokens import issue_token


@requires("users.manage")
async def create_user(
    session: AsyncSession, actor: Principal, values: Mapping[str, Any]
) -> tuple[User, str]:
    """Create an active user with ``name``, ``email`` and ``role_id``; return it with a
    first API token (shown once, stored hashed)."""
    problems = Problems()
    name = clean_text(
        problems, ["name"], values.get("name"), max_length=200, required=True, name=True
    )
    email = await _email(session, problems, values.get("email"), None)
    role = await _role(session, problems, values.get("role_id"))
    problems.raise_if_any()
    assert name is not None and email is not None and role is not None
    user = User(name=name, email=email, is_active=True, role_id=role.id)
    session.add(user)
    await session.flush()
    record(session, actor, "user.created", email, role=role.name)
    _, secret = await issue_token(session, actor, user, name="first token")
    return user, secret


@requires("users.manage")
async def update_user(
    session: AsyncSession, actor: Principal, user_id: int, values: Mapping[str, Any]
) -> User:
    """Change a user's name, e-mail, role or whether they are active. A deactivated user's
    tokens stop working at once; the last active admin stays."""
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise UserInputError.single(["user_id"], ErrorCode.NOT_FOUND, "No user with this id.")
    problems = Problems()
    if "name" in values:
        user.name = (
            clean_text(problems, ["name"], values["name"], max_length=200, required=True, name=True)
            or user.name
        )
    if "email" in values:
        user.email = await _email(session, problems, values["email"], user.id) or user.email
    role = await session.get(StaffRole, user.role_id)
    assert role is not None
    was_admin = user.is_active and is_admin_role(role)
    if "role_id" in values:
        role = await _role(session, problems, values["role_id"]) or role
    if values.get("is_active") is not None:
        user.is_active = values["is_active"]
    problems.raise_if_any()
    if was_admin and not (user.is_active and is_admin_role(role)):
        await _keep_an_admin(session, user)
    changed = {k: v for k, v in values.items() if k != "role_id"} | {"role": role.name}
    user.role_id = role.id
    await session.flush()
    record(session, actor, "user.updated", user.email, **changed)
    return user


async def _keep_an_admin(session: AsyncSession, leaving: User) -> None:
    # Lock every active admin, so two admins demoting each other cannot both succeed.
    admins = await session.scalars(
        select(User.id)
        .join(StaffRole, User.role_id == StaffRole.id)
        .where(User.is_active.is_(True), User.id != leaving.id)
        .where(StaffRole.name == ADMIN, StaffRole.built_in.is_(True))
        .with_for_update(of=User)
    )
    if not list(admins):
        raise UserInputError.single(
            ["user_id"],
            ErrorCode.LAST_ADMIN,
            f"{leaving.name} is the last active admin; make someone else admin first.",
        )


async def _email(
    session: AsyncSession, problems: Problems, value: str | None, user_id: int | None
) -> str | None:
    before = len(problems.items)
    email = clean_email(problems, ["email"], value)
    if email is None:
        if len(problems.items) == before:  # empty, rather than too long or malformed
            problems.add(["email"], ErrorCode.REQUIRED, "email is required.")
        return None
    email = email.lower()
    taken = await session.scalar(select(User.id).where(User.email == email, User.id != user_id))
    if taken is not None:
        problems.add(
            ["email"], ErrorCode.EMAIL_TAKEN, f"A user with e-mail {email} already exists."
        )
        return None
    return email


async def _role(session: AsyncSession, problems: Problems, role_id: int | None) -> StaffRole | None:
    if role_id is None:
        problems.add(["role_id"], ErrorCode.REQUIRED, "role is required.")
        return None
    try:
        return await role_by_id(session, role_id)
    except UserInputError as error:
        problems.items.extend(error.problems)
        return None


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.strip().lower()))


@requires("users.manage")
async def list_users(session: AsyncSession, actor: Principal) -> list[User]:
    return list(await session.scalars(select(User).order_by(User.name, User.id)))


async def development_principal(session: AsyncSession) -> Principal:
    """Who requests without a token act as in development mode: the first active admin,
    with every permission, even on an empty database."""
    user = await session.scalar(
        select(User)
        .join(StaffRole, User.role_id == StaffRole.id)
        .where(User.is_active.is_(True))
        .order_by((StaffRole.name == ADMIN).desc(), User.id)
        .limit(1)
    )
    everything = frozenset({EVERY_PERMISSION})
    if user is None:
        return Principal(name="development", permissions=everything)
    return Principal(name=user.name, permissions=everything, user_id=user.id)
