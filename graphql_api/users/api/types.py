"""GraphQL object types of staff users, staff roles, API tokens and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.nodes import findable
from graphql_api.graphql_base.relay import Node, global_id_field, rows_of
from graphql_api.kernel.access import EVERY_PERMISSION
from graphql_api.users import models


@findable(models.StaffRole, "users.manage")
@strawberry.type(description="A named set of permissions that staff users hold (rol).")
class StaffRole(Node):
    id: strawberry.ID = global_id_field("StaffRole")
    name: str = strawberry.field(description="Unique name, e.g. admin, manager, viewer.")
    description: str | None = strawberry.field(description="What the role is for.")
    built_in: bool = strawberry.field(
        description="admin, manager and viewer are built in and cannot be changed."
    )
    created_at: datetime = strawberry.field(description="When the role was made.")
    is_type_of = rows_of(models.StaffRole)

    @strawberry.field(description="The permissions it grants, written out, sorted.")
    def permissions(self, root: strawberry.Parent[models.StaffRole], info: Info) -> list[str]:
        if EVERY_PERMISSION in root.permissions:
            return sorted(info.context.known_permissions)
        return sorted(root.permissions)


@findable(models.User, None)
@strawberry.type(description="A staff member of the cooperative (gebruiker).")
class User(Node):
    name: str = strawberry.field(description="Full name.")
    email: str = strawberry.field(description="E-mail address; also the login.")
    is_active: bool = strawberry.field(
        description="Whether the user can still act; a deactivated user's tokens stop working."
    )
    created_at: datetime = strawberry.field(description="When the user was created.")

    id: strawberry.ID = global_id_field("User")
    is_type_of = rows_of(models.User)

    @strawberry.field(description="The user's staff role, which sets what they may do.")
    async def role(self, root: strawberry.Parent[models.User], info: Info) -> StaffRole:
        return await info.context.row(models.StaffRole, root.role_id)  # type: ignore[return-value]

    @strawberry.field(description="Whether the user holds the built-in admin role.")
    async def is_admin(self, root: strawberry.Parent[models.User], info: Info) -> bool:
        role = await info.context.row(models.StaffRole, root.role_id)
        return role is not None and EVERY_PERMISSION in role.permissions


@findable(models.ApiToken, "users.manage", owner="user_id")
@strawberry.type(description="An API token; its secret is shown once, when it is made.")
class ApiToken(Node):
    id: strawberry.ID = global_id_field("ApiToken")
    name: str = strawberry.field(description="What the token is for, e.g. 'website sync'.")
    permissions: list[str] | None = strawberry.field(
        description="The permissions it is narrowed to; null for all of its owner's."
    )
    created_at: datetime = strawberry.field(description="When it was made.")
    expires_at: datetime | None = strawberry.field(
        description="When it stops working; null for never."
    )
    last_used_at: datetime | None = strawberry.field(
        description="When it was last used, to the minute; null when never."
    )
    revoked_at: datetime | None = strawberry.field(
        description="When it was revoked; null while it is not."
    )
    is_type_of = rows_of(models.ApiToken)


@findable(models.AuditEntry, "users.manage")
@strawberry.type(description="One change of who may do what: users, staff roles, tokens.")
class AuditEntry(Node):
    id: strawberry.ID = global_id_field("AuditEntry")
    action: str = strawberry.field(
        description="What happened, e.g. user.created, staffRole.updated, apiToken.revoked."
    )
    subject: str = strawberry.field(description="Whom or what it concerned, in words.")
    details: JSON = strawberry.field(description="The values of the change.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    is_type_of = rows_of(models.AuditEntry)

    @strawberry.field(description="Who did it; null for the system (the command line).")
    async def actor(self, root: strawberry.Parent[models.AuditEntry], info: Info) -> User | None:
        return await info.context.row(models.User, root.actor_id)  # type: ignore[return-value]


@strawberry.type(description="A permission a staff role can grant.")
class Permission:
    name: str = strawberry.field(description="Its name, e.g. groups.manage.")
    description: str = strawberry.field(description="What it allows.")


@strawberry.type(description="Who is asking, and what they may do: what a frontend shows.")
class Me:
    permissions: list[str] = strawberry.field(
        description="Every permission this request holds (narrowed by its token), sorted."
    )
    user_id: strawberry.Private[int | None]

    @strawberry.field(description="The staff user; null only for the system.")
    async def user(self, info: Info) -> User | None:
        return await info.context.row(models.User, self.user_id)  # type: ignore[return-value]


def me_of(info: Info) -> Me:
    principal = info.context.principal
    return Me(
        permissions=principal.granted(info.context.known_permissions),
        user_id=principal.user_id,
    )


def permission_list(known: Any) -> list[Permission]:
    return [Permission(name=name, description=known[name]) for name in sorted(known)]
