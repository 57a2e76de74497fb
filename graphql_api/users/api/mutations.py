"""GraphQL mutations of staff users, staff roles and API tokens, with their payloads.

Each changes who may do what, so each writes an audit row (in the domain) and makes this
process forget the tokens it checked; other processes follow within the token cache's
lifetime.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.graphql_base.access import needing
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import UserError
from graphql_api.graphql_base.mutations import NO_ARGUMENTS, ErrorPaths, given_fields, run_mutation
from graphql_api.graphql_base.payloads import DeletePayload
from graphql_api.graphql_base.relay import decode_id
from graphql_api.users import accounts, staff_roles, tokens
from graphql_api.users.api.inputs import (
    CreateApiTokenInput,
    CreateUserInput,
    StaffRoleInput,
    UpdateUserInput,
)
from graphql_api.users.api.types import ApiToken, StaffRole, User

USER_BY_ID = ErrorPaths({"user_id": "id"})
ROLE_BY_ID = ErrorPaths({"role_id": "id"})
TOKEN_BY_ID = ErrorPaths({"token_id": "id"}, input=None)

PayloadT = TypeVar("PayloadT")


@strawberry.type(description="Result of creating or changing a staff user.")
class UserPayload:
    user: User | None = strawberry.field(default=None, description="The user, when changed.")
    token: str | None = strawberry.field(
        default=None,
        description="createUser only: the new user's first API token, shown this once.",
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="Result of creating or changing a staff role.")
class StaffRolePayload:
    staff_role: StaffRole | None = strawberry.field(default=None, description="The role.")
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="Result of creating or revoking an API token.")
class ApiTokenPayload:
    api_token: ApiToken | None = strawberry.field(default=None, description="The token.")
    secret: str | None = strawberry.field(
        default=None,
        description="createApiToken only: the token to send as 'Authorization: Bearer "
        "<secret>'. Shown this once; only its hash is stored.",
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


async def _changing_access(
    info: Info,
    payload: type[PayloadT],
    paths: ErrorPaths,
    work: Callable[[AsyncSession], Awaitable[dict[str, Any]]],
) -> PayloadT:
    result = await run_mutation(info, payload, paths, work)
    info.context.access_changed()
    return result


def _role_id(values: dict[str, Any]) -> dict[str, Any]:
    """The input's ``role_id`` as a primary key."""
    if values.get("role_id") is not None:
        values["role_id"] = decode_id(values["role_id"], "StaffRole", ["role_id"])
    return values


@strawberry.type
class UserMutations:
    @strawberry.mutation(
        description=needing("users.manage", "Add a staff user; returns their first API token.")
    )
    async def create_user(
        self,
        info: Info,
        input: Annotated[CreateUserInput, strawberry.argument(description="The new user.")],
    ) -> UserPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            values = _role_id(given_fields(input))
            user, secret = await accounts.create_user(session, info.context.principal, values)
            return {"user": user, "token": secret}

        return await _changing_access(info, UserPayload, NO_ARGUMENTS, work)

    @strawberry.mutation(
        description=needing(
            "users.manage",
            "Change a staff user's name, e-mail, role or activity; the last active admin "
            "cannot be deactivated or demoted (LAST_ADMIN).",
        )
    )
    async def update_user(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The user's id.")],
        input: Annotated[UpdateUserInput, strawberry.argument(description="The changes.")],
    ) -> UserPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(id, "User", ["user_id"])
            values = _role_id(given_fields(input))
            return {"user": await accounts.update_user(session, info.context.principal, pk, values)}

        return await _changing_access(info, UserPayload, USER_BY_ID, work)

    @strawberry.mutation(
        description=needing("users.manage", "Make a staff role: a named set of permissions.")
    )
    async def create_staff_role(
        self,
        info: Info,
        input: Annotated[StaffRoleInput, strawberry.argument(description="The new role.")],
    ) -> StaffRolePayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            actor = info.context.principal
            role = await staff_roles.create_staff_role(session, actor, given_fields(input))
            return {"staff_role": role}

        return await _changing_access(info, StaffRolePayload, NO_ARGUMENTS, work)

    @strawberry.mutation(
        description=needing(
            "users.manage",
            "Change a staff role that is not built in; its users hold the new permissions at once.",
        )
    )
    async def update_staff_role(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The role's id.")],
        input: Annotated[StaffRoleInput, strawberry.argument(description="The changes.")],
    ) -> StaffRolePayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(id, "StaffRole", ["role_id"])
            actor = info.context.principal
            role = await staff_roles.update_staff_role(session, actor, pk, given_fields(input))
            return {"staff_role": role}

        return await _changing_access(info, StaffRolePayload, ROLE_BY_ID, work)

    @strawberry.mutation(
        description=needing(
            "users.manage", "Delete a staff role that is not built in and that no user holds."
        )
    )
    async def delete_staff_role(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The role's id.")],
    ) -> DeletePayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(id, "StaffRole", ["role_id"])
            await staff_roles.delete_staff_role(session, info.context.principal, pk)
            return {"deleted_id": id}

        return await _changing_access(info, DeletePayload, ROLE_BY_ID, work)

    @strawberry.mutation(
        description="Make an API token for yourself, optionally expiring and narrowed to some "
        "of your permissions; any signed-in caller."
    )
    async def create_api_token(
        self,
        info: Info,
        input: Annotated[CreateApiTokenInput, strawberry.argument(description="The token.")],
    ) -> ApiTokenPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            actor = info.context.principal
            api_token, secret = await tokens.create_api_token(session, actor, vars(input))
            return {"api_token": api_token, "secret": secret}

        return await _changing_access(info, ApiTokenPayload, NO_ARGUMENTS, work)

    @strawberry.mutation(
        description="Revoke one of your API tokens (anyone's, with `users.manage`); it stops "
        "working at once. Any signed-in caller."
    )
    async def revoke_api_token(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The token's id.")],
    ) -> ApiTokenPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(id, "ApiToken", ["token_id"])
            actor = info.context.principal
            return {"api_token": await tokens.revoke_api_token(session, actor, pk)}

        return await _changing_access(info, ApiTokenPayload, TOKEN_BY_ID, work)
