"""GraphQL object type of neighbourhood roles (Rol in buurtaanpak)."""

from __future__ import annotations

from typing import Annotated

import strawberry

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
