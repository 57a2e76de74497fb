"""Who is acting, and the permission check every domain service applies.

A principal is whoever calls a domain service: a staff user through one of their API
tokens, the development-mode admin, or the system itself (the CLI, seeding, migrations).
Services check it themselves, so GraphQL, the CLI and plugins all meet the same rule.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError

EVERY_PERMISSION = "*"
"""Stored as a role's permission: every permission, including those plugins add later."""

CORE_PERMISSIONS: Mapping[str, str] = {
    "groups.view": "See groups, their members, counts and history.",
    "groups.manage": "Create, change, delete and convert groups.",
    "members.manage": "Add contacts to and remove them from static groups.",
    "contacts.view": "Find contacts and read their details (e-mail, telephone, address).",
    "contacts.manage": "Create and change contacts.",
    "contacts.export": "Download contacts in bulk: a group's members, the groups report.",
    "contacts.import": "Import contacts and memberships from CSV and Excel files, and undo it.",
    "templates.view": "See e-mail templates.",
    "templates.manage": "Create, change and delete e-mail templates.",
    "users.manage": "Manage staff users, staff roles and tokens; read the audit log.",
    "deliveries.manage": "See notification deliveries and retry failed ones.",
    "jobs.view": "See every bulk job (taak), not only your own.",
    "jobs.manage": "Cancel anyone's bulk jobs, not only your own.",
}
"""The permissions of the core, by name; plugins register more."""


class Forbidden(UserInputError):
    """The principal lacks a permission; the call changes nothing."""

    def __init__(self, permission: str) -> None:
        message = f"This needs the permission '{permission}', which you lack."
        super().__init__([Problem((), ErrorCode.FORBIDDEN, message)])
        self.permission = permission


@dataclass(frozen=True)
class Principal:
    """The acting party of one call and the permissions it holds."""

    name: str
    permissions: frozenset[str]
    user_id: int | None = None
    """The staff user acting; None for the system."""
    token_id: int | None = None
    """The API token the request came with; None in development mode and for the system."""

    def can(self, permission: str) -> bool:
        return EVERY_PERMISSION in self.permissions or permission in self.permissions

    def require(self, permission: str) -> None:
        """Raise ``Forbidden`` unless the principal holds ``permission``."""
        if not self.can(permission):
            raise Forbidden(permission)

    def granted(self, known: Collection[str]) -> list[str]:
        """The permissions held, written out against every ``known`` one, sorted."""
        return sorted(p for p in known if self.can(p))


NOBODY = Principal(name="anonymous", permissions=frozenset())
"""Who asks for the GraphiQL page without a token: may read nothing."""

SYSTEM = Principal(name="system", permissions=frozenset({EVERY_PERMISSION}))
"""The CLI, seeding and migrations: may do everything, and is recorded as nobody."""

P = ParamSpec("P")
R = TypeVar("R")
Service = Callable[Concatenate[AsyncSession, Principal, P], Awaitable[R]]


def requires(permission: str) -> Callable[[Service[P, R]], Service[P, R]]:
    """Make a domain service ``(session, actor, ...)`` refuse an actor without
    ``permission`` before it touches anything; the permission is kept on the function
    as ``required_permission`` for documentation and tests."""

    def decorate(service: Service[P, R]) -> Service[P, R]:
        @functools.wraps(service)
        async def checked(
            session: AsyncSession, actor: Principal, /, *args: P.args, **kwargs: P.kwargs
        ) -> R:
            actor.require(permission)
            return await service(session, actor, *args, **kwargs)

        checked.required_permission = permission  # type: ignore[attr-defined]
        return checked

    return decorate


def permissions_of(session: AsyncSession) -> Mapping[str, str]:
    """Every permission the application knows, by name: the core's and its plugins'."""
    return session.info.get("permissions", CORE_PERMISSIONS)
