"""``PluginInfo``: what the plugin manager records about each plugin, and what the
``plugins`` query shows of it."""

from __future__ import annotations

import strawberry


@strawberry.type(description="An installed plugin, or one that failed to load.")
class PluginInfo:
    name: str = strawberry.field(description="Entry-point name, e.g. `coach`.")
    version: str | None = strawberry.field(description="Version of its distribution.")
    hooks: list[str] = strawberry.field(
        default_factory=list, description="The hooks it implements."
    )
    error: str | None = strawberry.field(
        default=None,
        description="Why it is not active (failed to import or register); null when it is.",
    )
    subscriptions: list[str] = strawberry.field(
        default_factory=list,
        description="Event types delivered to it through the notification outbox.",
    )
