"""One application's plugins, in a manager of their own: found and checked
(``discovery``), their contributions gathered (``contributions``), then called while the
application runs (``delivery``). ``Plugins`` composes these behind one object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import pluggy
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.groups.changes import Change
from graphql_api.groups.rules import Rules
from graphql_api.notifications.outbox import Event
from graphql_api.plugin_host import contributions, delivery, strict
from graphql_api.plugin_host.api.types import PluginInfo
from graphql_api.plugin_host.contributions import CoreFieldNames
from graphql_api.plugin_host.discovery import PluginFailed, Registered, register_plugins
from graphql_api.settings import Settings

__all__ = ["CoreFieldNames", "PluginFailed", "Plugins"]


class Plugins:
    """The plugins of one application. Never shared between applications."""

    def __init__(
        self,
        settings: Settings,
        plugins: Sequence[object] | None = None,
        *,
        core_fields: CoreFieldNames,
        core_plugins: Mapping[str, object],
    ) -> None:
        self._registered = Registered(settings)
        if settings.strict_plugins:
            # Plugins' hooks run watched: their writes to core tables are refused.
            strict.watch_sessions()
        self.core_fields = core_fields
        register_plugins(self._registered, core_plugins, plugins)
        self._collect()
        self.manager.check_pending()

    @property
    def settings(self) -> Settings:
        """The application's settings the plugins were loaded with."""
        return self._registered.settings

    @property
    def manager(self) -> pluggy.PluginManager:
        """The pluggy manager itself, for what this object does not wrap."""
        return self._registered.manager

    @property
    def infos(self) -> list[PluginInfo]:
        """Every plugin found, active or left out with its error."""
        return self._registered.infos

    @property
    def plugin_settings(self) -> dict[str, Any]:
        """Each plugin's own settings object, by plugin name."""
        return self._registered.plugin_settings

    def _collect(self) -> None:
        """Gather every plugin's contributions. A plugin dropped on the way may have
        contributed already, so gathering starts over until no plugin is dropped."""
        registered = self._registered
        while True:
            active = len(self.manager.get_plugins())
            registered.plugin_settings = contributions.plugin_settings(registered)
            delivery.subscribe(registered)
            self.roles = MappingProxyType(contributions.roles(registered))
            self.filter_fields = contributions.filter_fields(registered, self.roles)
            self.permissions = MappingProxyType(contributions.permissions(registered))
            self.schema = contributions.schema(registered, self.core_fields)
            self.job_kinds = MappingProxyType(contributions.job_kinds(registered))
            self.scheduled_jobs = contributions.scheduled_jobs(registered)
            self.http_routes = contributions.http_routes(registered)
            self.merge_fields = MappingProxyType(contributions.merge_fields(registered))
            if len(self.manager.get_plugins()) == active:
                return

    def migrations(self) -> dict[str, str]:
        """Each plugin's folder of Alembic revisions (kept in a version table of its own)."""
        return contributions.migrations(self._registered)

    def rules(self) -> Rules:
        """The domain rules of this application: roles, filter fields and change hooks."""
        return Rules(
            roles=self.roles,
            filter_fields=self.filter_fields,
            on_change=self.on_change,
            merge_fields=self.merge_fields,
        )

    async def startup(self, app: Any) -> None:
        """Run each plugin's startup; one that fails is reported and does not stop the rest."""
        await delivery.startup(self._registered, app)

    async def on_change(self, session: AsyncSession, change: Change) -> None:
        """Ask every plugin to check ``change``, then let every plugin take part in it."""
        await delivery.on_change(self._registered, self.schema.error_codes, session, change)

    @property
    def subscribers(self) -> dict[str, list[str]]:
        """Event types each active plugin wants delivered."""
        return delivery.subscribers(self.infos)

    async def deliver(
        self, plugin: str, event: Event, delivery_id: int, session: AsyncSession
    ) -> None:
        """Hand one event to one plugin's ``deliver`` hook (the worker's ``Deliverer``)."""
        await delivery.deliver(self._registered, plugin, event, delivery_id, session)
