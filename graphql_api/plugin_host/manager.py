"""One application's plugins: found through entry points or given, in its own manager."""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types.field import StrawberryField

from graphql_api import __version__
from graphql_api.groups.changes import Change
from graphql_api.groups.filters import CONTACT_FIELDS, FilterField
from graphql_api.groups.rules import Rules
from graphql_api.kernel.access import CORE_PERMISSIONS
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError
from graphql_api.notifications.outbox import Event, SkipDelivery, record
from graphql_api.plugin_host import hookspecs
from graphql_api.plugin_host.api.types import PluginInfo
from graphql_api.plugin_host.contributions import (
    SCHEMA_TARGETS,
    PluginConflict,
    SchemaContributions,
    error_code_prefix,
    graphql_name,
)
from graphql_api.roles.registry import RoleDefinition
from graphql_api.settings import Settings

logger = logging.getLogger("graphql_api.plugin_host")

CoreFieldNames = Mapping[str, frozenset[str]]
"""GraphQL names of the core's fields on each target type, which plugins may not reuse."""


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
        self.settings = settings
        self.core_fields = core_fields
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self.plugin_settings: dict[str, Any] = {}
        for name, core_plugin in core_plugins.items():
            self._register(core_plugin, name, __version__)
        if plugins is not None:
            for plugin in plugins:
                self._register(plugin, _name_of(plugin), getattr(plugin, "__version__", None))
        elif not settings.disable_plugin_autoload:
            self._discover()
        self._collect()
        self.manager.check_pending()

    def _collect(self) -> None:
        """Gather every plugin's contributions. A plugin dropped on the way may have
        contributed already, so gathering starts over until no plugin is dropped."""
        while True:
            active = len(self.manager.get_plugins())
            self.plugin_settings = self._plugin_settings()
            self._subscribe()
            self.roles = MappingProxyType(self._roles())
            self.filter_fields = self._filter_fields()
            self.permissions = MappingProxyType(self._permissions())
            self.schema = self._schema_contributions()
            if len(self.manager.get_plugins()) == active:
                return

    # Registration -------------------------------------------------------------------

    def _discover(self) -> None:
        allowed = set(self.settings.plugins) if self.settings.plugins else None
        entry_points = importlib.metadata.entry_points(group=hookspecs.PROJECT)
        for missing in sorted((allowed or set()) - {e.name for e in entry_points}):
            self._failed(missing, None, LookupError("not installed (named in GRAPHQL_API_PLUGINS)"))
        for entry_point in entry_points:
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
            _check_api_version(plugin)
            self.manager.register(plugin, name=name)
        except Exception as error:
            self._failed(name, version, error)
            return
        callers = self.manager.get_hookcallers(plugin) or []
        unknown = sorted(caller.name for caller in callers if not caller.has_spec())
        if unknown:
            # A misspelt hook would otherwise load and never be called.
            self.manager.unregister(plugin)
            self._failed(name, version, UnknownHook(f"no such hook: {', '.join(unknown)}"))
            return
        hooks = sorted(caller.name for caller in callers)
        self.infos.append(PluginInfo(name=name, version=version, hooks=hooks))

    def _drop(self, name: str, error: Exception) -> None:
        """Leave out a registered plugin whose startup hook failed, reporting why."""
        version = next((i.version for i in self.infos if i.name == name), None)
        self._failed(name, version, error)
        self.manager.unregister(name=name)
        self.infos = [i for i in self.infos if i.name != name or i.error]

    def _failed(self, name: str, version: str | None, error: Exception) -> None:
        if self.settings.strict_plugins:
            raise PluginFailed(f"plugin {name!r} failed: {error}") from error
        logger.exception("plugin %r failed and is left out", name, exc_info=error)
        self.infos.append(
            PluginInfo(name=name, version=version, error=f"{type(error).__name__}: {error}")
        )

    def _results(
        self,
        hook: str,
        of_type: type | tuple[type, ...] | None = None,
        check: Callable[[str, Any], None] | None = None,
        **kwargs: Any,
    ) -> list[tuple[str, Any]]:
        """Each plugin's result of a hook run while the app is built, with its name.

        An ``async`` implementation is run to completion. A plugin whose hook raises, or
        returns something other than a list of ``of_type`` (or what ``check(plugin,
        result)`` refuses), is dropped and reported (unless strict mode is on).
        """
        results = []
        for impl in getattr(self.manager.hook, hook).get_hookimpls():
            try:
                result = _run_to_completion(self._call(impl, **kwargs))
                if check is not None and result is not None:
                    check(impl.plugin_name, result)
                elif of_type is not None and result is not None:
                    _check_list(hook, result, of_type)
            except Exception as error:
                self._drop(impl.plugin_name, error)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    # Startup contributions ------------------------------------------------------------

    def _roles(self) -> dict[str, RoleDefinition]:
        roles: dict[str, RoleDefinition] = {}
        owners: dict[str, str] = {}
        for plugin, definitions in self._results("register_roles", RoleDefinition):
            for role in definitions:
                _claim(owners, role.key, plugin, "role")
                roles[role.key] = role
        return roles

    def _permissions(self) -> dict[str, str]:
        permissions = dict(CORE_PERMISSIONS)
        for _, contributed in self._results("register_permissions", check=_check_permissions):
            permissions.update(contributed)
        return permissions

    def _filter_fields(self) -> dict[str, FilterField]:
        fields = dict(CONTACT_FIELDS)
        owners = dict.fromkeys(CONTACT_FIELDS, "core")
        for plugin, contributed in self._results("filter_fields", FilterField, roles=self.roles):
            for filter_field in contributed:
                _claim(owners, filter_field.name, plugin, "filter field")
                fields[filter_field.name] = filter_field
        return fields

    def _schema_contributions(self) -> SchemaContributions:
        contributions = SchemaContributions()
        type_owners: dict[str, str] = {}
        for plugin, types in self._results("graphql_types", type):
            for graphql_type in types:
                _claim(type_owners, _type_name(graphql_type), plugin, "type")
                contributions.types.append((plugin, graphql_type))
        for target in SCHEMA_TARGETS:
            owners = dict.fromkeys(self.core_fields[target], "core")
            for plugin, fields in self._results(f"{target}_fields", StrawberryField):
                for schema_field in fields:
                    _claim(owners, graphql_name(schema_field), plugin, f"{target} field")
                    contributions.fields[target].append((plugin, schema_field))
        code_owners = dict.fromkeys(ErrorCode, "core")
        for plugin, codes in self._results("error_codes", check=_check_codes):
            for code, description in codes.items():
                _claim(code_owners, code, plugin, "error code")
                contributions.error_codes[code] = (plugin, description)
        return contributions

    def _plugin_settings(self) -> dict[str, Any]:
        """Each plugin's settings, read from the environment once."""
        found = {}
        for plugin, settings_class in self._results("plugin_settings", None):
            try:
                found[plugin] = settings_class()
            except Exception as error:
                self._drop(plugin, error)
        return found

    def _subscribe(self) -> None:
        for plugin, events in self._results("event_subscriptions", str):
            unknown = set(events) - set(hookspecs.EVENT_TYPES)
            if unknown:
                self._drop(plugin, ValueError(f"unknown event types {sorted(unknown)}"))
                continue
            for info in self.infos:
                if info.name == plugin and not info.error:
                    info.subscriptions = sorted(events)

    def migrations(self) -> dict[str, str]:
        """Each plugin's folder of Alembic revisions (kept in a version table of its own)."""
        return dict(self._results("migrations", None))

    def rules(self) -> Rules:
        """The domain rules of this application: roles, filter fields and change hooks."""
        return Rules(
            roles=self.roles,
            filter_fields=self.filter_fields,
            on_change=self.on_change,
        )

    async def startup(self, app: Any) -> None:
        """Run each plugin's startup; one that fails is reported and does not stop the rest."""
        for impl in self.manager.hook.startup.get_hookimpls():
            try:
                await _maybe_await(self._call(impl, app=app))
            except Exception as error:
                if self.settings.strict_plugins:
                    raise
                logger.exception("startup of plugin %r failed", impl.plugin_name)
                for info in self.infos:
                    if info.name == impl.plugin_name:
                        info.error = f"startup failed: {type(error).__name__}: {error}"

    # Changes ---------------------------------------------------------------------------

    async def on_change(self, session: AsyncSession, change: Change) -> None:
        """Ask every plugin to check ``change``, then let every plugin take part in it."""
        problems: list[Problem] = []
        for impl in self.manager.hook.validate_change.get_hookimpls():
            found = await _maybe_await(self._call(impl, session=session, change=change)) or []
            self._check_declared(impl.plugin_name, found)
            problems.extend(found)
        if problems:
            raise UserInputError(problems)
        for impl in self.manager.hook.apply_change.get_hookimpls():
            await _maybe_await(self._call(impl, session=session, change=change))
        await record(session, change, self.subscribers)

    def _check_declared(self, plugin: str, problems: list[Problem]) -> None:
        """A plugin refuses with the core's codes or its own declared ones, nothing else:
        a client could not read any other."""
        declared = self.schema.error_codes
        for problem in problems:
            if problem.code not in ErrorCode.__members__ and problem.code not in declared:
                raise TypeError(
                    f"plugin {plugin!r} refused with the undeclared error code "
                    f"{problem.code!r}; declare it with the error_codes hook"
                )

    def _call(self, impl: Any, **kwargs: Any) -> Any:
        """Call a hook implementation with the arguments it names (a subset is fine, as in
        pluggy itself); ``settings`` is the plugin's own settings object."""
        kwargs["settings"] = self.plugin_settings.get(impl.plugin_name)
        return impl.function(**{name: kwargs[name] for name in impl.argnames})

    @property
    def subscribers(self) -> dict[str, list[str]]:
        """Event types each active plugin wants delivered."""
        return {i.name: i.subscriptions for i in self.infos if i.subscriptions and not i.error}

    async def deliver(
        self, plugin: str, event: Event, delivery_id: int, session: AsyncSession
    ) -> None:
        """Hand one event to one plugin's ``deliver`` hook."""
        impls = [i for i in self.manager.hook.deliver.get_hookimpls() if i.plugin_name == plugin]
        if not impls:
            raise SkipDelivery(f"plugin {plugin!r} is not installed or has no deliver hook")
        call = self._call(impls[0], event=event, delivery_id=delivery_id, session=session)
        await _maybe_await(call)


class PluginFailed(RuntimeError):
    """A plugin failed to import or register, and strict mode refuses to start without it."""


class UnknownHook(LookupError):
    """A plugin implements a hook that does not exist (a misspelt name, usually)."""


class IncompatiblePlugin(RuntimeError):
    """A plugin requires a version of the plugin API this graphql-api does not offer."""


def _check_api_version(plugin: object) -> None:
    """Refuse a plugin whose ``requires_api`` (a version specifier such as ``">=1,<2"``)
    does not admit this graphql-api's ``API_VERSION``."""
    required = getattr(plugin, "requires_api", None)
    if required is None:
        return
    try:
        specifier = SpecifierSet(str(required))
    except InvalidSpecifier as error:
        raise IncompatiblePlugin(f"requires_api {required!r} is not a version range") from error
    if not specifier.contains(hookspecs.API_VERSION, prereleases=True):
        raise IncompatiblePlugin(
            f"requires plugin API {required}, this graphql-api offers {hookspecs.API_VERSION}"
        )


def _type_name(graphql_type: type) -> str:
    definition = getattr(graphql_type, "__strawberry_definition__", None)
    if definition is None:
        raise TypeError(f"{graphql_type!r} is not a Strawberry type")
    return str(definition.name)


def _check_codes(plugin: str, codes: Any) -> None:
    """Error codes are a dict of code -> description, each code with the plugin's prefix."""
    prefix = error_code_prefix(plugin)
    if not isinstance(codes, dict) or not all(
        isinstance(code, str) and isinstance(text, str) for code, text in codes.items()
    ):
        raise TypeError("hook 'error_codes' must return a dict of code -> description")
    wrong = sorted(code for code in codes if not code.startswith(prefix) or not code.isupper())
    if wrong:
        raise ValueError(f"error codes {wrong} must be capitals starting with {prefix!r}")


def _check_permissions(plugin: str, permissions: Any) -> None:
    """Permissions are a dict of name -> description, each name ``<plugin>.<action>``."""
    if not isinstance(permissions, dict) or not all(
        isinstance(name, str) and isinstance(text, str) for name, text in permissions.items()
    ):
        raise TypeError("hook 'register_permissions' must return a dict of name -> description")
    prefix = f"{plugin}."
    wrong = sorted(name for name in permissions if not name.startswith(prefix) or name == prefix)
    if wrong:
        raise ValueError(f"permissions {wrong} must be named {prefix!r} and an action")


def _check_list(hook: str, result: Any, of_type: type | tuple[type, ...]) -> None:
    if not isinstance(result, list | tuple) or not all(isinstance(x, of_type) for x in result):
        name = getattr(of_type, "__name__", of_type)
        raise TypeError(f"hook {hook!r} must return a list of {name}")


def _run_to_completion(result: Any) -> Any:
    """The value of a hook, awaiting it (in a thread of its own) if it is async.

    These hooks run while the application is built, which may be inside a running loop.
    """
    if not inspect.isawaitable(result):
        return result

    async def wait() -> Any:
        return await result

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, wait()).result()


def _claim(owners: dict[str, str], name: str, plugin: str, what: str) -> None:
    if name in owners:
        raise PluginConflict(
            f"{what} {name!r} is contributed by both {owners[name]!r} and {plugin!r}"
        )
    owners[name] = plugin


def _name_of(plugin: object) -> str:
    """The name of a plugin given directly: its ``PLUGIN_NAME`` (the entry-point name it is
    installed under), else its module's or object's name."""
    name = getattr(plugin, "PLUGIN_NAME", None) or getattr(plugin, "__name__", None)
    return str(name or type(plugin).__name__)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
