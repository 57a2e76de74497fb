"""GraphQL queries of neighbourhood roles."""

from __future__ import annotations

import strawberry

from graphql_api.graphql_base.context import Info
from graphql_api.roles.api.types import Role


@strawberry.type
class RoleQueries:
    @strawberry.field(
        description="Every registered role; role plugins (coach, projectleider, ...) add them."
    )
    def roles(self, info: Info) -> list[Role]:
        return list(info.context.roles.values())  # type: ignore[arg-type]
