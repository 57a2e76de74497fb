"""GraphQL type and query for neighbourhood roles."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graphql_api.graphql.context import Info
from graphql_api.roles.registry import RoleDefinition


@strawberry.type(description="A role in the neighbourhood approach (Rol in buurtaanpak).")
class Role:
    key: str = strawberry.field(description="Stable key, e.g. `coach`; what inputs take.")
    description: str | None = strawberry.field(description="What holding the role means.")

    @strawberry.field(description="Label to show, e.g. 'Is coach'.")
    def label(
        self,
        root: strawberry.Parent[RoleDefinition],
        locale: Annotated[
            str | None, strawberry.argument(description="`nl` (default) or `en`.")
        ] = "nl",
    ) -> str:
        return root.label(locale or "nl")


@strawberry.type
class RoleQueries:
    @strawberry.field(
        description="Every registered role; role plugins (coach, projectleider, ...) add them."
    )
    def roles(self, info: Info) -> list[Role]:
        return list(info.context.roles.values())  # type: ignore[arg-type]
