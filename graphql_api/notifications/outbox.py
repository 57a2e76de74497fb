"""Events written in the same transaction as the change that caused them.

A rolled-back change leaves no event; a committed one has one delivery per plugin that
subscribed to its type, which the worker delivers at least once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.groups.changes import (
    Change,
    ContactErased,
    GroupCreated,
    GroupDeleted,
    GroupUpdated,
    MembersAdded,
    MembersRemoved,
    PortalMessage,
)
from graphql_api.kernel.db import utcnow
from graphql_api.notifications.models import Delivery, OutboxEvent


@dataclass(frozen=True)
class Event:
    """What a plugin's ``deliver`` hook gets: the event as it was recorded."""

    id: int
    type: str
    occurred_at: datetime
    data: Mapping[str, Any]


class SkipDelivery(Exception):
    """Raised by a ``deliver`` hook when there is nothing to do (the delivery is SKIPPED)."""


def events_of(change: Change) -> list[tuple[str, dict[str, Any]]]:
    """``(type, data)`` of each event a change causes; membership changes give one event
    per contact, so each is delivered (and retried) on its own."""
    if isinstance(change, MembersAdded | MembersRemoved):
        kind = "members.added" if isinstance(change, MembersAdded) else "members.removed"
        common = {
            "group": _plain(change.group),
            "source": change.source.value,
            "actorId": change.actor_id,
            "cause": change.cause,
        }
        return [(kind, {**common, "contactId": contact_id}) for contact_id in change.contact_ids]
    if isinstance(change, ContactErased):
        return [("contact.erased", {"contactId": change.contact_id, "actorId": change.actor_id})]
    if isinstance(change, PortalMessage):
        data = {
            "contactId": change.contact_id,
            "email": change.email,
            "name": change.name,
            "token": change.token,
            "expiresAt": change.expires_at.isoformat(),
        }
        return [(change.kind, data)]
    if isinstance(change, GroupUpdated):
        data = {"group": _plain(change.after), "before": _plain(change.before)}
        return [("group.updated", {**data, "actorId": change.actor_id})]
    kind = "group.created" if isinstance(change, GroupCreated) else "group.deleted"
    assert isinstance(change, GroupCreated | GroupDeleted)
    return [(kind, {"group": _plain(change.group), "actorId": change.actor_id})]


def _plain(snapshot: Any) -> dict[str, Any]:
    return {
        key: getattr(value, "value", value) for key, value in dataclasses.asdict(snapshot).items()
    }


async def record(
    session: AsyncSession, change: Change, subscribers: Mapping[str, Sequence[str]]
) -> None:
    """Write the change's events and a delivery for every plugin subscribed to each."""
    events = [(kind, data) for kind, data in events_of(change) if _wanted(kind, subscribers)]
    if not events:
        return
    now = utcnow()
    ids = await session.scalars(
        # The tables, not the ORM classes: rows by the hundred thousand skip the ORM's
        # bookkeeping, which costs more than the insert.
        insert(OutboxEvent.__table__).returning(
            OutboxEvent.__table__.c.id, sort_by_parameter_order=True
        ),
        [{"type": kind, "data": data, "occurred_at": now} for kind, data in events],
    )
    deliveries = [
        {
            "event_id": event_id,
            "plugin": plugin,
            "next_attempt_at": now,
            "created_at": now,
            "errors": [],
        }
        for event_id, (kind, _) in zip(ids, events, strict=True)
        for plugin, kinds in subscribers.items()
        if kind in kinds
    ]
    await session.execute(insert(Delivery.__table__), deliveries)


def _wanted(kind: str, subscribers: Mapping[str, Sequence[str]]) -> bool:
    return any(kind in kinds for kinds in subscribers.values())
