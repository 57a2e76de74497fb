"""One application's plugins: found through entry points or given, in its own manager."""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.utils.str_converters import to_camel_case

from graphql_api import __version__
from graphql_api.changes import Change
from graphql_api.errors import Problem, UserInputError
from graphql_api.groups.filters import CONTACT_FIELDS, FilterField
from graphql_api.notifications.outbox import Event, SkipDelivery, record
from graphql_api.plugins import hookspecs
from graphql_api.roles.registry import RoleDefinition
from graphql_api.rules import Rules
from graphql_api.settings import Settings

logger = logging.getLogger("graphql_api.plugins")

SCHEMA_TARGETS = ("query", "mutation", "group", "contact")


class PluginConflict(RuntimeError):
    """Two plugins contribute the same name; the service cannot start."""


@dataclass
class PluginInfo:
    """What ``plugins`` reports about one plugin."""

    name: str
    version: str | None
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    subscriptions: list[str] = field(default_factory=list)


@dataclass
class SchemaContributions:
    """The GraphQL types and fields plugins add, per target type."""

    types: list[type] = field(default_factory=list)
    fields: dict[str, list[Any]] = field(default_factory=lambda: {t: [] for t in SCHEMA_TARGETS})


class Plugins:
    """The plugins of one application. Never shared between applications."""

    def __init__(self, settings: Settings, plugins: Sequence[object] | None = None) -> None:
        self.settings = settings
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        from graphql_api.roles import rules as role_rules

        self._register(role_rules, "core.roles", __version__)
        if plugins is not None:
            for plugin in plugins:
                self._register(plugin, _name_of(plugin), getattr(plugin, "__version__", None))
        elif not settings.disable_plugin_autoload:
            self._discover()
        self.plugin_settings = self._plugin_settings()
        self._subscribe()
        self.roles = self._roles()
        self.filter_fields = self._filter_fields()
        self.schema = self._schema_contributions()

    # Registration -------------------------------------------------------------------

    def _discover(self) -> None:
        allowed = set(self.settings.plugins) if self.settings.plugins else None
        for entry_point in importlib.metadata.entry_points(group=hookspecs.PROJECT):
            if allowed is not None and entry_point.name not in allowed:
                continue
            version = entry_point.dist.version if entry_point.dist else None
            try:
                plugin = entry_point.load()
            except Exception as error:
                self._failed(entry_point.name, version, error)
                continue
            self._register(plugin, entry_point.name, version)

    def _register(self, plugin: object, name: str, version: str | None) -> None:
        try:
            self.manager.register(plugin, name=name)
        except Exception as error:
            self._failed(name, version, error)
            return
        hooks = sorted(caller.name for caller in self.manager.get_hookcallers(plugin) or [])
        self.infos.append(PluginInfo(name, version, hooks))

    def _drop(self, name: str, error: Exception) -> None:
        """Leave out a registered plugin whose startup hook failed, reporting why."""
        version = next((i.version for i in self.infos if i.name == name), None)
        self._failed(name, version, error)
        self.manager.unregister(name=name)
        self.infos = [i for i in self.infos if i.name != name or i.error]

    def _failed(self, name: str, version: str | None, error: Exception) -> None:
        if self.settings.strict_plugins:
            raise RuntimeError(f"plugin {name!r} failed: {error}") from error
        logger.exception("plugin %r failed and is left out", name, exc_info=error)
        self.infos.append(PluginInfo(name, version, [], f"{type(error).__name__}: {error}"))

    def _results(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Each plugin's result of a startup hook, with the plugin's name.

        A plugin whose hook raises is unregistered and reported, unless strict mode is on.
        """
        results = []
        for impl in getattr(self.manager.hook, hook).get_hookimpls():
            try:
                result = impl.function(**kwargs)
            except Exception as error:
                self._drop(impl.plugin_name, error)
                continue
            if inspect.isawaitable(result):
                # These hooks run while the schema is built, before any event loop serves.
                getattr(result, "close", lambda: None)()
                self._drop(impl.plugin_name, TypeError(f"hook {hook!r} must not be async"))
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    # Startup contributions ------------------------------------------------------------

    def _roles(self) -> dict[str, RoleDefinition]:
        roles: dict[str, RoleDefinition] = {}
        owners: dict[str, str] = {}
        for plugin, definitions in self._results("register_roles"):
            for role in definitions:
                _claim(owners, role.key, plugin, "role")
                roles[role.key] = role
        return roles

    def _filter_fields(self) -> dict[str, FilterField]:
        fields = dict(CONTACT_FIELDS)
        owners = dict.fromkeys(CONTACT_FIELDS, "core")
        for plugin, contributed in self._results("filter_fields", roles=self.roles):
            for filter_field in contributed:
                _claim(owners, filter_field.name, plugin, "filter field")
                fields[filter_field.name] = filter_field
        return fields

    def _schema_contributions(self) -> SchemaContributions:
        contributions = SchemaContributions()
        for _, types in self._results("graphql_types"):
            contributions.types.extend(types)
        for target in SCHEMA_TARGETS:
            owners = dict.fromkeys(core_field_names(target), "core")
            for plugin, fields in self._results(f"{target}_fields"):
                for schema_field in fields:
                    _claim(owners, graphql_name(schema_field), plugin, f"{target} field")
                    contributions.fields[target].append((plugin, schema_field))
        return contributions

    def _plugin_settings(self) -> dict[str, Any]:
        """Each plugin's settings, read from the environment once."""
        found = {}
        for plugin, settings_class in self._results("plugin_settings"):
            try:
                found[plugin] = settings_class()
            except Exception as error:
                self._drop(plugin, error)
        return found

    def _subscribe(self) -> None:
        for plugin, events in self._results("event_subscriptions"):
            unknown = set(events) - set(hookspecs.EVENT_TYPES)
            if unknown:
                self._drop(plugin, ValueError(f"unknown event types {sorted(unknown)}"))
                continue
            for info in self.infos:
                if info.name == plugin and not info.error:
                    info.subscriptions = sorted(events)

    def migrations(self) -> list[str]:
        return [folder for _, folder in self._results("migrations")]

    def rules(self) -> Rules:
        """The domain rules of this application: roles, filter fields and change hooks."""
        return Rules(roles=self.roles, filter_fields=self.filter_fields, on_change=self.on_change)

    async def startup(self, app: Any) -> None:
        for impl in self.manager.hook.startup.get_hookimpls():
            await _maybe_await(impl.function(app=app))

    # Changes ---------------------------------------------------------------------------

    async def on_change(self, session: AsyncSession, change: Change) -> None:
        """Ask every plugin to check ``change``, then let every plugin take part in it."""
        problems: list[Problem] = []
        for impl in self.manager.hook.validate_change.get_hookimpls():
            problems.extend(await _maybe_await(impl.function(session=session, change=change)) or [])
        if problems:
            raise UserInputError(problems)
        for impl in self.manager.hook.apply_change.get_hookimpls():
            await _maybe_await(impl.function(session=session, change=change))
        await record(session, change, self.subscribers)

    @property
    def subscribers(self) -> dict[str, list[str]]:
        """Event types each active plugin wants delivered."""
        return {i.name: i.subscriptions for i in self.infos if i.subscriptions and not i.error}

    async def deliver(self, plugin: str, event: Event, delivery_id: int) -> None:
        """Hand one event to one plugin's ``deliver`` hook."""
        impls = [i for i in self.manager.hook.deliver.get_hookimpls() if i.plugin_name == plugin]
        if not impls:
            raise SkipDelivery(f"plugin {plugin!r} is not installed or has no deliver hook")
        await _maybe_await(impls[0].function(event=event, delivery_id=delivery_id))


def core_field_names(target: str) -> list[str]:
    """GraphQL names of the core's fields on a target type, which plugins may not reuse."""
    from graphql_api.graphql import schema

    root = {
        "query": schema.Query,
        "mutation": schema.Mutation,
        "group": schema.Group,
        "contact": schema.Contact,
    }[target]
    return [graphql_name(f) for f in root.__strawberry_definition__.fields]


def graphql_name(schema_field: Any) -> str:
    """The GraphQL name a contributed field will have."""
    if schema_field.graphql_name:
        return schema_field.graphql_name
    python_name = schema_field.python_name or schema_field.base_resolver.name
    return to_camel_case(python_name)


def _claim(owners: dict[str, str], name: str, plugin: str, what: str) -> None:
    if name in owners:
        raise PluginConflict(
            f"{what} {name!r} is contributed by both {owners[name]!r} and {plugin!r}"
        )
    owners[name] = plugin


def _name_of(plugin: object) -> str:
    name = getattr(plugin, "__name__", None) or type(plugin).__name__
    return str(name)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
