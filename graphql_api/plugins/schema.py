"""GraphQL view of the installed plugins."""

from __future__ import annotations

import strawberry

from graphql_api.graphql.context import Info


@strawberry.type(description="An installed plugin, or one that failed to load.")
class PluginInfo:
    name: str = strawberry.field(description="Entry-point name, e.g. `coach`.")
    version: str | None = strawberry.field(description="Version of its distribution.")
    hooks: list[str] = strawberry.field(description="The hooks it implements.")
    error: str | None = strawberry.field(
        description="Why it is not active (failed to import or register); null when it is."
    )
    subscriptions: list[str] = strawberry.field(
        description="Event types delivered to it through the notification outbox."
    )


@strawberry.type
class PluginQueries:
    @strawberry.field(description="Every plugin of this service, built-in ones included.")
    def plugins(self, info: Info) -> list[PluginInfo]:
        return info.context.plugins  # type: ignore[return-value]
