"""GraphQL queries of the plugin system."""

from __future__ import annotations

import strawberry

from graphql_api.graphql_base.context import Info
from graphql_api.plugin_host.api.types import PluginInfo


@strawberry.type
class PluginQueries:
    @strawberry.field(description="Every plugin of this service, built-in ones included.")
    def plugins(self, info: Info) -> list[PluginInfo]:
        return list(info.context.plugin_infos)
