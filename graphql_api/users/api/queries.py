"""GraphQL queries of staff users, staff roles, API tokens and the audit log."""

from __future__ import annotations

import strawberry
from sqlalchemy import select

from graphql_api.graphql_base.access import guarded_field
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.relay import After, Connection, First, paginate
from graphql_api.users import models
from graphql_api.users.accounts import list_users
from graphql_api.users.api.types import (
    ApiToken,
    AuditEntry,
    Me,
    Permission,
    StaffRole,
    User,
    me_of,
    permission_list,
)
from graphql_api.users.audit import NEWEST_FIRST
from graphql_api.users.staff_roles import list_staff_roles
from graphql_api.users.tokens import list_api_tokens


@strawberry.type
class UserQueries:
    @strawberry.field(description="Who is asking and what they may do; any signed-in caller.")
    def me(self, info: Info) -> Me:
        return me_of(info)

    @strawberry.field(description="The user making this request; any signed-in caller.")
    async def viewer(self, info: Info) -> User | None:
        user_id = info.context.principal.user_id
        return await info.context.row(models.User, user_id)  # type: ignore[return-value]

    @guarded_field("users.manage", "Every staff user, by name (gebruikers).")
    async def users(self, info: Info) -> list[User]:
        actor = info.context.principal
        return await info.context.db.run(lambda s: list_users(s, actor))  # type: ignore[return-value]

    @guarded_field("users.manage", "Every staff role, oldest first.")
    async def staff_roles(self, info: Info) -> list[StaffRole]:
        actor = info.context.principal
        return await info.context.db.run(lambda s: list_staff_roles(s, actor))  # type: ignore[return-value]

    @guarded_field("users.manage", "Every permission a staff role can grant, plugins' included.")
    def permissions(self, info: Info) -> list[Permission]:
        return permission_list(info.context.known_permissions)

    @strawberry.field(description="Your own API tokens, newest first; any signed-in caller.")
    async def api_tokens(self, info: Info) -> list[ApiToken]:
        actor = info.context.principal
        return await info.context.db.run(lambda s: list_api_tokens(s, actor))  # type: ignore[return-value]

    @guarded_field("users.manage", "Changes of users, staff roles and tokens, newest first.")
    async def audit_log(
        self, info: Info, first: First = None, after: After = None
    ) -> Connection[AuditEntry]:
        return await paginate(
            info,
            select(models.AuditEntry),
            NEWEST_FIRST,
            first=first,
            after=after,
            key_of=lambda entry: (entry.id,),
        )
