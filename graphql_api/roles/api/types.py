"""GraphQL object type of neighbourhood roles (Rol in buurtaanpak)."""

from __future__ import annotations

import strawberry

from graphql_api.graphql_base.labels import Locale
from graphql_api.kernel.labels import DEFAULT_LOCALE
from graphql_api.roles.registry import RoleDefinition


@strawberry.type(description="A role in the neighbourhood approach (Rol in buurtaanpak).")
class Role:
    key: str = strawberry.field(description="Stable key, e.g. `coach`; what inputs take.")
    description: str | None = strawberry.field(description="What holding the role means.")

    @strawberry.field(description="Label to show, e.g. 'Is coach'.")
    def label(
        self, root: strawberry.Parent[RoleDefinition], locale: Locale = DEFAULT_LOCALE
    ) -> str:
        return root.label(locale)
