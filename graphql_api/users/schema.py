"""GraphQL types and queries for staff users."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.graphql.context import Info
from graphql_api.graphql.relay import Node, global_id_field, rows_of
from graphql_api.repository import load_by_id
from graphql_api.users.models import User as UserModel
from graphql_api.users.service import list_users


@strawberry.type(description="A staff member of the cooperative (gebruiker).")
class User(Node):
    name: str = strawberry.field(description="Full name.")
    email: str = strawberry.field(description="E-mail address; also the login.")
    is_active: bool = strawberry.field(description="Whether the user can still sign in.")
    is_admin: bool = strawberry.field(description="Whether the user administers the service.")
    created_at: datetime = strawberry.field(description="When the user was created.")

    id: strawberry.ID = global_id_field("User")
    is_type_of = rows_of(UserModel)


async def user_by_id(info: Info, user_id: int | None) -> UserModel | None:
    """For fields that point to a user, such as ``responsible`` and ``createdBy``."""
    if user_id is None:
        return None
    return await info.context.loader(load_by_id(UserModel)).load(user_id)


@strawberry.type
class UserQueries:
    @strawberry.field(description="Every staff user, by name (gebruikers).")
    async def users(self, info: Info) -> list[User]:
        return await info.context.db.run(list_users)  # type: ignore[return-value]

    @strawberry.field(description="The user making this request.")
    def viewer(self, info: Info) -> User | None:
        return info.context.user  # type: ignore[return-value]
