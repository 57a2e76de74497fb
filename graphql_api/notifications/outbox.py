"""Events written in the same transaction as the change that caused them.

A rolled-back change leaves no event; a committed one has one delivery per plugin that
subscribed to its type, which the worker delivers at least once.

Events are numbered in commit order, so a reader that follows the table by id (the live
feed of subscriptions) never passes an event that commits later with a smaller id. A
transaction therefore writes its events when it commits: on PostgreSQL it first takes a
lock that orders committing writers and holds it to the end; SQLite has one writer at a
time anyway. Taking that lock last, after every row lock, means it cannot deadlock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from graphql_api.groups.changes import (
    Change,
    ContactErased,
    ContactsUpdated,
    GroupCreated,
    GroupDeleted,
    GroupUpdated,
    MailOptOutChanged,
    MembersAdded,
    MembersRemoved,
    PortalMessage,
)
from graphql_api.kernel.db import utcnow
from graphql_api.notifications.models import Delivery, OutboxEvent

FEED_EVENTS = frozenset(
    {
        "group.created",
        "group.updated",
        "group.deleted",
        "members.added",
        "members.removed",
        "job.changed",
    }
)
"""Recorded whether or not a plugin subscribed: GraphQL subscriptions follow them."""

CONTACTS_PER_EVENT = 1_000
"""The most contact ids one ``members.added`` / ``members.removed`` event carries."""

NOTIFY_CHANNEL = "graphql_api_outbox"
"""PostgreSQL channel told the newest event id when events commit."""

ON_EVENTS_COMMITTED = "on_events_committed"
"""Key of a session's ``info``: called after a commit that wrote events (this process)."""

_PENDING = "outbox_pending"
_COMMITTED = "outbox_committed"
_ORDER_LOCK = 7_470_001
"""The PostgreSQL advisory lock held from writing events to commit."""


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
    """``(type, data)`` of each event a change causes; a membership change gives one event
    per group and up to ``CONTACTS_PER_EVENT`` contacts (plugin API 2), so the outbox grows
    with the groups a change touches, not with contacts times groups."""
    if isinstance(change, MembersAdded | MembersRemoved):
        kind = "members.added" if isinstance(change, MembersAdded) else "members.removed"
        common = {
            "group": _plain(change.group),
            "source": change.source.value,
            "actorId": change.actor_id,
            "cause": change.cause,
            "jobId": change.job_id,
        }
        ids = list(change.contact_ids)
        return [
            (kind, {**common, "contactIds": ids[start : start + CONTACTS_PER_EVENT]})
            for start in range(0, len(ids), CONTACTS_PER_EVENT)
        ]
    if isinstance(change, ContactsUpdated):
        common = {
            "fields": list(change.fields),
            "actorId": change.actor_id,
            "cause": change.cause,
            "jobId": change.job_id,
        }
        return _per_contacts("contacts.updated", common, change.contact_ids)
    if isinstance(change, MailOptOutChanged):
        kind = "mail.opted_out" if change.opted_out else "mail.opt_out_withdrawn"
        common = {"groupId": change.group_id, "source": change.source}
        return _per_contacts(kind, common, change.contact_ids)
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


def _per_contacts(
    kind: str, common: dict[str, Any], contact_ids: Sequence[int]
) -> list[tuple[str, dict[str, Any]]]:
    """An event of ``kind`` per ``CONTACTS_PER_EVENT`` of the contacts, each with
    ``common`` and its ``contactIds``."""
    ids = list(contact_ids)
    return [
        (kind, {**common, "contactIds": ids[start : start + CONTACTS_PER_EVENT]})
        for start in range(0, len(ids), CONTACTS_PER_EVENT)
    ]


def _plain(snapshot: Any) -> dict[str, Any]:
    return {
        key: getattr(value, "value", value) for key, value in dataclasses.asdict(snapshot).items()
    }


async def record(
    session: AsyncSession, change: Change, subscribers: Mapping[str, Sequence[str]]
) -> None:
    """Keep the change's events, with the plugins subscribed to each, to be written when
    the transaction commits (``write_pending``); a rollback forgets them."""
    now = utcnow()
    pending = session.info.setdefault(_PENDING, [])
    for kind, data in events_of(change):
        plugins = [plugin for plugin, kinds in subscribers.items() if kind in kinds]
        if plugins or kind in FEED_EVENTS:
            pending.append((kind, data, now, plugins))


def record_event(
    session: AsyncSession, kind: str, data: dict[str, Any], plugins: Sequence[str] = ()
) -> None:
    """Keep one event that is not a domain change (a job's progress), for ``plugins``, to
    be written when the transaction commits, in commit order like every other."""
    session.info.setdefault(_PENDING, []).append((kind, data, utcnow(), list(plugins)))


def write_pending(session: Session) -> None:
    """Write the events recorded in this transaction and their deliveries. Runs just
    before commit (synchronously, as SQLAlchemy's session events do); a benchmark that
    rolls back calls it itself to pay the same cost."""
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(select(func.pg_advisory_xact_lock(_ORDER_LOCK)))
    ids = list(
        session.scalars(
            # The tables, not the ORM classes: rows by the hundred thousand skip the ORM's
            # bookkeeping, which costs more than the insert.
            insert(OutboxEvent.__table__).returning(
                OutboxEvent.__table__.c.id, sort_by_parameter_order=True
            ),
            [{"type": kind, "data": data, "occurred_at": at} for kind, data, at, _ in pending],
        )
    )
    deliveries = [
        {
            "event_id": event_id,
            "plugin": plugin,
            "next_attempt_at": at,
            "created_at": at,
            "errors": [],
        }
        for event_id, (_, _, at, plugins) in zip(ids, pending, strict=True)
        for plugin in plugins
    ]
    if deliveries:
        session.execute(insert(Delivery.__table__), deliveries)
    if postgres:
        session.execute(select(func.pg_notify(NOTIFY_CHANNEL, str(ids[-1]))))
    session.info[_COMMITTED] = True


def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_COMMITTED, None)


def _announce_committed(session: Session) -> None:
    if session.info.pop(_COMMITTED, False) and (announce := session.info.get(ON_EVENTS_COMMITTED)):
        announce()


event.listen(Session, "before_commit", write_pending)
event.listen(Session, "after_commit", _announce_committed)
event.listen(Session, "after_rollback", _forget_pending)
