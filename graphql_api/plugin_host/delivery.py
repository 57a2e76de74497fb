"""Calling plugins while the application runs: their startup, their say in every change
(refusing it, or taking part in its transaction), and the events they subscribed to,
recorded in the outbox with the change and delivered to them afterwards. In strict mode
each of these calls is watched: a plugin's write to a core table is refused (``strict``)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.groups.changes import Change
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError
from graphql_api.notifications.outbox import Event, SkipDelivery, record
from graphql_api.plugin_host import hookspecs, strict
from graphql_api.plugin_host.api.types import PluginInfo
from graphql_api.plugin_host.discovery import Registered, call, drop, results

logger = logging.getLogger("graphql_api.plugin_host")


def subscribe(registered: Registered) -> None:
    """Note on each plugin the event types it wants delivered; one naming an event type
    that does not exist is dropped, as it would wait for events that never come."""
    for plugin, events in results(registered, "event_subscriptions", str):
        unknown = set(events) - set(hookspecs.EVENT_TYPES)
        if unknown:
            drop(registered, plugin, ValueError(f"unknown event types {sorted(unknown)}"))
            continue
        for info in registered.infos:
            if info.name == plugin and not info.error:
                info.subscriptions = sorted(events)


def subscribers(infos: Sequence[PluginInfo]) -> dict[str, list[str]]:
    """Event types each active plugin wants delivered: what a change records in the outbox."""
    return {i.name: i.subscriptions for i in infos if i.subscriptions and not i.error}


async def startup(registered: Registered, app: Any) -> None:
    """Run each plugin's startup; one that fails is reported and does not stop the rest."""
    for impl in registered.manager.hook.startup.get_hookimpls():
        try:
            await _run(registered, impl, "startup", None, app=app)
        except Exception as error:
            if registered.settings.strict_plugins:
                raise
            logger.exception("startup of plugin %r failed", impl.plugin_name)
            for info in registered.infos:
                if info.name == impl.plugin_name:
                    info.error = f"startup failed: {type(error).__name__}: {error}"


async def on_change(
    registered: Registered,
    declared: Collection[str],
    session: AsyncSession,
    change: Change,
) -> None:
    """Ask every plugin to check ``change``, then let every plugin take part in it, and
    record its events for the subscribers in the same transaction. ``declared`` are the
    error codes plugins declared, the only ones besides the core's they may refuse with."""
    problems: list[Problem] = []
    for impl in registered.manager.hook.validate_change.get_hookimpls():
        found = await _run(registered, impl, "validate_change", session, change=change) or []
        _check_declared(impl.plugin_name, found, declared)
        problems.extend(found)
    if problems:
        raise UserInputError(problems)
    for impl in registered.manager.hook.apply_change.get_hookimpls():
        await _run(registered, impl, "apply_change", session, change=change)
    await record(session, change, subscribers(registered.infos))


def _check_declared(plugin: str, problems: list[Problem], declared: Collection[str]) -> None:
    """A plugin refuses with the core's codes or its own declared ones, nothing else:
    a client could not read any other."""
    for problem in problems:
        if problem.code not in ErrorCode.__members__ and problem.code not in declared:
            raise TypeError(
                f"plugin {plugin!r} refused with the undeclared error code "
                f"{problem.code!r}; declare it with the error_codes hook"
            )


async def deliver(
    registered: Registered, plugin: str, event: Event, delivery_id: int, session: AsyncSession
) -> None:
    """Hand one event to one plugin's ``deliver`` hook."""
    hook = registered.manager.hook.deliver
    impls = [i for i in hook.get_hookimpls() if i.plugin_name == plugin]
    if not impls:
        raise SkipDelivery(f"plugin {plugin!r} is not installed or has no deliver hook")
    await _run(registered, impls[0], "deliver", session, event=event, delivery_id=delivery_id)


async def _run(
    registered: Registered, impl: Any, hook: str, session: AsyncSession | None, **kwargs: Any
) -> Any:
    """Call one plugin's implementation of ``hook`` to completion. In strict mode it runs
    watched (``strict.hook_running``): its writes to core tables are refused, unless the
    plugin is one of the core's own."""
    watched = registered.settings.strict_plugins and impl.plugin_name not in registered.core_plugins
    async with strict.hook_running(impl.plugin_name if watched else None, hook, session):
        return await _maybe_await(call(registered, impl, session=session, **kwargs))


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
