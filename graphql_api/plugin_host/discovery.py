"""Finding an application's plugins, registering them and checking what they are and what
their hooks return. A plugin that fails any of it is left out and reported, so one broken
plugin does not take the service down; strict mode refuses to start instead."""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from graphql_api import __version__
from graphql_api.plugin_host import hookspecs
from graphql_api.plugin_host.api.types import PluginInfo
from graphql_api.settings import Settings

logger = logging.getLogger("graphql_api.plugin_host")


class PluginFailed(RuntimeError):
    """A plugin failed to import or register, and strict mode refuses to start without it."""


class UnknownHook(LookupError):
    """A plugin implements a hook that does not exist (a misspelt name, usually)."""


class IncompatiblePlugin(RuntimeError):
    """A plugin requires a version of the plugin API this graphql-api does not offer."""


def _hook_manager() -> pluggy.PluginManager:
    """A manager of its own, knowing this project's hooks: nothing is shared between apps."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


@dataclass
class Registered:
    """One application's registered plugins and the report on each: what every step of
    loading and calling them reads, and what a failing plugin changes."""

    settings: Settings
    manager: pluggy.PluginManager = field(default_factory=_hook_manager)
    infos: list[PluginInfo] = field(default_factory=list)
    plugin_settings: dict[str, Any] = field(default_factory=dict)
    """Each plugin's own settings object, which its hooks receive as ``settings``."""
    core_plugins: set[str] = field(default_factory=set)
    """The names of the core's own plugins (``core.roles``): strict mode's guard of the
    core's rows (``strict``) lets them write, as the core."""


def register_plugins(
    registered: Registered, core_plugins: Mapping[str, object], given: Sequence[object] | None
) -> None:
    """Register the core's plugins, then exactly the ``given`` ones, or, when none are given
    and autoload is on, the installed ones (entry points) that GRAPHQL_API_PLUGINS allows."""
    for name, core_plugin in core_plugins.items():
        registered.core_plugins.add(name)
        _register(registered, core_plugin, name, __version__)
    if given is not None:
        for plugin in given:
            _register(registered, plugin, _name_of(plugin), getattr(plugin, "__version__", None))
    elif not registered.settings.disable_plugin_autoload:
        _discover(registered)


def _discover(registered: Registered) -> None:
    allowed = set(registered.settings.plugins) if registered.settings.plugins else None
    entry_points = importlib.metadata.entry_points(group=hookspecs.PROJECT)
    for missing in sorted((allowed or set()) - {e.name for e in entry_points}):
        error = LookupError("not installed (named in GRAPHQL_API_PLUGINS)")
        _failed(registered, missing, None, error)
    for entry_point in entry_points:
        if allowed is not None and entry_point.name not in allowed:
            continue
        version = entry_point.dist.version if entry_point.dist else None
        try:
            plugin = entry_point.load()
        except Exception as error:
            _failed(registered, entry_point.name, version, error)
            continue
        _register(registered, plugin, entry_point.name, version)


def _register(registered: Registered, plugin: object, name: str, version: str | None) -> None:
    manager = registered.manager
    try:
        _check_api_version(plugin)
        manager.register(plugin, name=name)
    except Exception as error:
        _failed(registered, name, version, error)
        return
    callers = manager.get_hookcallers(plugin) or []
    unknown = sorted(caller.name for caller in callers if not caller.has_spec())
    if unknown:
        # A misspelt hook would otherwise load and never be called.
        manager.unregister(plugin)
        _failed(registered, name, version, UnknownHook(f"no such hook: {', '.join(unknown)}"))
        return
    hooks = sorted(caller.name for caller in callers)
    registered.infos.append(PluginInfo(name=name, version=version, hooks=hooks))


def drop(registered: Registered, name: str, error: Exception) -> None:
    """Leave out a registered plugin that failed after registering, reporting why, so the
    rest of the application still starts."""
    version = next((i.version for i in registered.infos if i.name == name), None)
    _failed(registered, name, version, error)
    registered.manager.unregister(name=name)
    registered.infos = [i for i in registered.infos if i.name != name or i.error]


PLUGIN_IMPORTS = (
    "a plugin imports only `graphql_api.plugin` of graphql-api (and `graphql_api.testing` in "
    "its tests); nothing else is promised to stay where it is (docs/plugins.md)"
)
"""What to tell the author of a plugin that failed importing a module of graphql-api."""


def imports_graphql_api(error: BaseException | None) -> bool:
    """Whether a plugin failed importing a module of graphql-api (one it should not use)."""
    name = getattr(error, "name", None) if isinstance(error, ImportError) else None
    return isinstance(name, str) and (name == "graphql_api" or name.startswith("graphql_api."))


def _failed(registered: Registered, name: str, version: str | None, error: Exception) -> None:
    if registered.settings.strict_plugins:
        raise PluginFailed(f"plugin {name!r} failed: {error}") from error
    if isinstance(error, ImportError) and error.name:
        hint = f"; {PLUGIN_IMPORTS}" if imports_graphql_api(error) else ""
        logger.exception(
            "plugin %r failed and is left out: it could not import %s%s",
            name,
            error.name,
            hint,
            exc_info=error,
        )
    else:
        logger.exception("plugin %r failed and is left out", name, exc_info=error)
    registered.infos.append(
        PluginInfo(name=name, version=version, error=f"{type(error).__name__}: {error}")
    )


def results(
    registered: Registered,
    hook: str,
    /,
    of_type: type | tuple[type, ...] | None = None,
    check: Callable[[str, Any], None] | None = None,
    **kwargs: Any,
) -> list[tuple[str, Any]]:
    """Each plugin's result of a hook run while the app is built, with its name.

    An ``async`` implementation is run to completion. A plugin whose hook raises, or
    returns something other than a list of ``of_type`` (or what ``check(plugin,
    result)`` refuses), is dropped and reported (unless strict mode is on).
    """
    found = []
    for impl in getattr(registered.manager.hook, hook).get_hookimpls():
        try:
            result = _run_to_completion(call(registered, impl, **kwargs))
            if check is not None and result is not None:
                check(impl.plugin_name, result)
            elif of_type is not None and result is not None:
                _check_list(hook, result, of_type)
        except Exception as error:
            drop(registered, impl.plugin_name, error)
            continue
        if result is not None:
            found.append((impl.plugin_name, result))
    return found


def call(registered: Registered, impl: Any, /, **kwargs: Any) -> Any:
    """Call a hook implementation with the arguments it names (a subset is fine, as in
    pluggy itself); ``settings`` is the plugin's own settings object."""
    kwargs["settings"] = registered.plugin_settings.get(impl.plugin_name)
    return impl.function(**{name: kwargs[name] for name in impl.argnames})


PORTING_FROM_1 = (
    " (a membership event now carries contactIds, up to 1,000 of one group, not one "
    "contactId; docs/plugins.md, 'From plugin API 1 to 2', says how to port a plugin)"
)
"""Added to the refusal of a plugin written for plugin API 1."""


def _check_api_version(plugin: object) -> None:
    """Refuse a plugin whose ``requires_api`` (a version specifier such as ``">=2,<3"``)
    does not admit this graphql-api's ``API_VERSION``."""
    required = getattr(plugin, "requires_api", None)
    if required is None:
        return
    try:
        specifier = SpecifierSet(str(required))
    except InvalidSpecifier as error:
        raise IncompatiblePlugin(f"requires_api {required!r} is not a version range") from error
    if not specifier.contains(hookspecs.API_VERSION, prereleases=True):
        # Plugin API 1 was 1.0 alone: a plugin admitting it was written for one event per
        # contact, and the docs say how to port it.
        porting = PORTING_FROM_1 if specifier.contains("1.0", prereleases=True) else ""
        raise IncompatiblePlugin(
            f"requires plugin API {required}, this graphql-api offers "
            f"{hookspecs.API_VERSION}{porting}"
        )


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


def _name_of(plugin: object) -> str:
    """The name of a plugin given directly: its ``PLUGIN_NAME`` (the entry-point name it is
    installed under), else its module's or object's name."""
    name = getattr(plugin, "PLUGIN_NAME", None) or getattr(plugin, "__name__", None)
    return str(name or type(plugin).__name__)
