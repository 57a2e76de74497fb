"""Keeps a group in sync with a Laposta mailing list (docs/mailing-list.md).

Entries and exits of a linked group, static and derived, and changes of its members'
addresses and names are pushed to the list through the outbox; unsubscribes come back by
Laposta's webhook, a daily pull and a full resync, as the group's opt-out. The modules:
``client`` (Laposta's HTTP API), ``models`` (the plugin's tables), ``sync`` (what to push,
states), ``jobs`` (resync and pull), ``api`` (GraphQL), ``webhooks`` (Laposta's POSTs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import Event, JobKind, ScheduledJob, SkipDelivery, hookimpl
from graphql_api_laposta import api, jobs, sync, webhooks
from graphql_api_laposta.sync import LapostaSettings

__version__ = "0.1.0"
PLUGIN_NAME = "laposta"
requires_api = ">=2.1,<3"


@hookimpl
def plugin_settings() -> type[BaseSettings]:
    return LapostaSettings


@hookimpl
def migrations() -> str:
    return str(Path(__file__).parent / "migrations")


@hookimpl
def register_permissions() -> dict[str, str]:
    return {
        jobs.PERMISSION: "Link groups to Laposta mailing lists, unlink them, and start "
        "their resync and unsubscribe pulls."
    }


@hookimpl
def error_codes() -> dict[str, str]:
    return dict(sync.ERROR_CODES)


@hookimpl
def graphql_types() -> list[type]:
    return [api.MailingListSync, api.MailingListSyncError, api.MailingListCounts]


@hookimpl
def query_fields(settings: LapostaSettings | None) -> list[Any]:
    return api.fields(settings)[0]


@hookimpl
def mutation_fields(settings: LapostaSettings | None) -> list[Any]:
    return api.fields(settings)[1]


@hookimpl
def event_subscriptions(settings: LapostaSettings | None) -> list[str]:
    # Without an API key nothing is pushed, and no delivery is queued for this plugin.
    return list(sync.SUBSCRIPTIONS) if settings is not None and settings.configured else []


@hookimpl
async def deliver(event: Event, session: AsyncSession, settings: LapostaSettings | None) -> None:
    if settings is None or not settings.configured:
        raise SkipDelivery("no Laposta API key is configured")
    done = await sync.handle_event(session, settings, event.type, event.data)
    if done is None:
        raise SkipDelivery(f"{event.type} concerns no group linked to a Laposta list")


@hookimpl
def job_kinds(settings: LapostaSettings | None) -> dict[str, JobKind]:
    return jobs.kinds(settings)


@hookimpl
def scheduled_jobs(settings: LapostaSettings | None) -> list[ScheduledJob]:
    return jobs.schedules(settings)


@hookimpl
def http_routes(settings: LapostaSettings | None) -> list[Any]:
    return webhooks.routes(settings)
