"""Staff roles: named sets of permissions that users hold (admin, manager, viewer, ...)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.kernel.access import EVERY_PERMISSION, Principal, permissions_of, requires
from graphql_api.kernel.errors import ErrorCode, Problems, UserInputError
from graphql_api.kernel.validation import clean_text, name_key
from graphql_api.users.audit import record
from graphql_api.users.models import StaffRole, User

ADMIN = "admin"
"""The built-in role holding every permission; at least one active user keeps it."""
MAX_PERMISSIONS = 200


def role_grants(role: StaffRole) -> frozenset[str]:
    return frozenset(role.permissions)


def is_admin_role(role: StaffRole) -> bool:
    return EVERY_PERMISSION in role.permissions


async def role_by_id(session: AsyncSession, role_id: int, field: str = "role_id") -> StaffRole:
    role = await session.get(StaffRole, role_id)
    if role is None:
        raise UserInputError.single([field], ErrorCode.NOT_FOUND, "No staff role with this id.")
    return role


async def role_named(session: AsyncSession, name: str) -> StaffRole | None:
    return await session.scalar(select(StaffRole).where(func.lower(StaffRole.name) == name.lower()))


@requires("users.manage")
async def list_staff_roles(session: AsyncSession, actor: Principal) -> list[StaffRole]:
    return list(await session.scalars(select(StaffRole).order_by(StaffRole.id)))


@requires("users.manage")
async def create_staff_role(
    session: AsyncSession, actor: Principal, values: Mapping[str, Any]
) -> StaffRole:
    """A new role from ``name``, ``description`` and ``permissions`` (known names only)."""
    role = StaffRole(built_in=False, permissions=[])
    await _apply(session, role, {"description": None, "permissions": [], **values}, new=True)
    session.add(role)
    await session.flush()
    record(session, actor, "staffRole.created", role.name, permissions=role.permissions)
    return role


@requires("users.manage")
async def update_staff_role(
    session: AsyncSession, actor: Principal, role_id: int, values: Mapping[str, Any]
) -> StaffRole:
    """Change a role made by an admin; its users get the new permissions at once."""
    role = await _editable(session, role_id)
    await _apply(session, role, values, new=False)
    await session.flush()
    record(session, actor, "staffRole.updated", role.name, permissions=role.permissions)
    return role


@requires("users.manage")
async def delete_staff_role(session: AsyncSession, actor: Principal, role_id: int) -> None:
    """Delete a role no user holds."""
    role = await _editable(session, role_id)
    holders = await session.scalar(select(func.count()).where(User.role_id == role.id))
    if holders:
        raise UserInputError.single(
            ["role_id"],
            ErrorCode.STAFF_ROLE_IN_USE,
            f"{holders} user(s) hold the role '{role.name}'; give them another role first.",
        )
    await session.delete(role)
    record(session, actor, "staffRole.deleted", role.name)


async def _editable(session: AsyncSession, role_id: int) -> StaffRole:
    role = await session.get(StaffRole, role_id, with_for_update=True)
    if role is None:
        raise UserInputError.single(["role_id"], ErrorCode.NOT_FOUND, "No staff role with this id.")
    if role.built_in:
        raise UserInputError.single(
            ["role_id"],
            ErrorCode.BUILT_IN_ROLE,
            f"'{role.name}' is built in and cannot be changed; make a new role instead.",
        )
    return role


async def _apply(
    session: AsyncSession, role: StaffRole, values: Mapping[str, Any], *, new: bool
) -> None:
    problems = Problems()
    if new or "name" in values:
        name = clean_text(
            problems, ["name"], values.get("name"), max_length=50, required=True, name=True
        )
        if name is not None and await _name_taken(session, name, role.id):
            problems.add(["name"], ErrorCode.NAME_TAKEN, f"A staff role '{name}' already exists.")
        role.name = name or role.name
    if "description" in values:
        role.description = clean_text(
            problems, ["description"], values["description"], max_length=500
        )
    if "permissions" in values:
        role.permissions = known_permissions(problems, session, values["permissions"] or [])
    problems.raise_if_any()


async def _name_taken(session: AsyncSession, name: str, role_id: int | None) -> bool:
    names = await session.execute(select(StaffRole.id, StaffRole.name))
    return any(name_key(other) == name_key(name) and pk != role_id for pk, other in names)


def known_permissions(
    problems: Problems, session: AsyncSession, permissions: Sequence[str]
) -> list[str]:
    """The permissions, each once and sorted; an unknown one is recorded as a problem."""
    if len(permissions) > MAX_PERMISSIONS:
        problems.add(["permissions"], ErrorCode.TOO_MANY, f"At most {MAX_PERMISSIONS} permissions.")
        return []
    known = permissions_of(session)
    unknown = sorted({p for p in permissions if p not in known})
    if unknown:
        problems.add(
            ["permissions"],
            ErrorCode.UNKNOWN_PERMISSION,
            f"Unknown permission(s): {', '.join(u[:60] for u in unknown[:10])}.",
        )
    return sorted({p for p in permissions if p in known})
