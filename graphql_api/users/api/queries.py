"""GraphQL queries of staff users."""

from __future__ import annotations

import strawberry

from graphql_api.api.context import Info
from graphql_api.users.api.types import User
from graphql_api.users.service import list_users


@strawberry.type
class UserQueries:
    @strawberry.field(description="Every staff user, by name (gebruikers).")
    async def users(self, info: Info) -> list[User]:
        return await info.context.db.run(list_users)  # type: ignore[return-value]

    @strawberry.field(description="The user making this request.")
    def viewer(self, info: Info) -> User | None:
        return info.context.user  # type: ignore[return-value]
