"""GraphQL subscriptions of groups: a group's changes and its members' comings and goings.

They follow the outbox, so a subscriber sees what webhooks see (static and derived
groups alike), in commit order. Each message carries its ``eventId``; a client that
reconnects passes the last one it handled as ``afterEventId`` and misses nothing. A
``members.added`` / ``members.removed`` event holds up to 1,000 contacts of one group
(plugin API 2): ``membershipChanged`` sends one message per contact, all with the event's
id, so resuming is per event.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Collection
from datetime import datetime
from typing import Annotated, Any

import strawberry

from graphql_api.contacts import models as contact_models
from graphql_api.graphql_base.access import needing, needs
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.enums import described_enum
from graphql_api.graphql_base.errors import PublicError
from graphql_api.graphql_base.relay import query_id, to_global_id
from graphql_api.groups import models
from graphql_api.groups.api.types import (
    ContactRef,
    Group,
    MembershipActionType,
    MembershipSourceType,
)
from graphql_api.groups.models import MembershipAction, MembershipSource
from graphql_api.notifications.outbox import Event


class GroupChangeKind(enum.StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


GroupChangeKindType = described_enum(
    GroupChangeKind,
    "What happened to a group.",
    {
        GroupChangeKind.CREATED: "The group was made.",
        GroupChangeKind.UPDATED: "Its settings or what it is built from changed.",
        GroupChangeKind.DELETED: "The group was deleted.",
    },
)

GROUP_EVENTS = {
    "group.created": GroupChangeKind.CREATED,
    "group.updated": GroupChangeKind.UPDATED,
    "group.deleted": GroupChangeKind.DELETED,
}
MEMBERSHIP_EVENTS = {
    "members.added": MembershipAction.ADDED,
    "members.removed": MembershipAction.REMOVED,
}

EVENT_ID = "The event's number, rising in commit order; pass the last one handled as "
"`afterEventId` when reconnecting."
MEMBERSHIP_EVENT_ID = (
    "The number of the event this message is part of, rising in commit order. One change of "
    "the group's members is one event for up to 1,000 contacts, sent as one message per "
    "contact, all with this number: resuming is per event. Pass as `afterEventId` the last "
    "event all of whose messages were handled (a later message has another `eventId`); after "
    "only some of an event's messages, pass the one before and skip the contacts already "
    "handled when the event comes again."
)
GroupIdArgument = Annotated[
    strawberry.ID, strawberry.argument(description="Global id of the group to follow.")
]
AfterEventId = Annotated[
    int | None,
    strawberry.argument(
        description="Resume after this `eventId`: every later event is sent first, then "
        "new ones as they commit (kept for the outbox's retention). Null: new events only. "
        "Resuming is per event: the messages of one event (a change of up to 1,000 members) "
        "share its `eventId`, so pass one whose messages were all handled."
    ),
]


@strawberry.type(description="A group was created, changed or deleted.")
class GroupChange:
    event_id: int = strawberry.field(description=EVENT_ID)
    kind: GroupChangeKindType = strawberry.field(description="What happened.")
    occurred_at: datetime = strawberry.field(description="When it was committed.")
    name: str = strawberry.field(description="The group's name after the change.")
    group_pk: strawberry.Private[int]

    @strawberry.field(description="Global id of the group.")
    def group_id(self) -> strawberry.ID:
        return to_global_id("Group", self.group_pk)

    @strawberry.field(description="The group as it is now; null once it is deleted.")
    async def group(self, info: Info) -> Group | None:
        return await info.context.row(models.Group, self.group_pk)

    @classmethod
    def of(cls, event: Event) -> GroupChange:
        group = event.data["group"]
        return cls(
            event_id=event.id,
            kind=GROUP_EVENTS[event.type],
            occurred_at=event.occurred_at,
            name=group["name"],
            group_pk=group["id"],
        )


@strawberry.type(description="A contact joined or left a group (lid erbij, lid eraf).")
class MembershipChange:
    event_id: int = strawberry.field(description=MEMBERSHIP_EVENT_ID)
    action: MembershipActionType = strawberry.field(description="ADDED or REMOVED.")
    source: MembershipSourceType = strawberry.field(
        description="Through which path; DERIVED for dynamic and composite groups."
    )
    cause: str | None = strawberry.field(
        description="For source DERIVED: the change that made the contact enter or leave."
    )
    occurred_at: datetime = strawberry.field(description="When it was committed.")
    group_pk: strawberry.Private[int]
    contact_pk: strawberry.Private[int]

    @strawberry.field(description="Global id of the group.")
    def group_id(self) -> strawberry.ID:
        return to_global_id("Group", self.group_pk)

    @strawberry.field(description="Global id of the contact.")
    def contact_id(self) -> strawberry.ID:
        return to_global_id("Contact", self.contact_pk)

    @strawberry.field(description="The contact as it is now; null once it is erased.")
    async def contact(self, info: Info) -> ContactRef | None:
        return await info.context.row(contact_models.Contact, self.contact_pk)

    @strawberry.field(description="The group as it is now; null once it is deleted.")
    async def group(self, info: Info) -> Group | None:
        return await info.context.row(models.Group, self.group_pk)

    @classmethod
    def each_of(cls, event: Event) -> list[MembershipChange]:
        """One message per contact of the event (``contactIds``, up to 1,000), in its
        order, all with the event's id."""
        data = event.data
        return [
            cls(
                event_id=event.id,
                action=MEMBERSHIP_EVENTS[event.type],
                source=MembershipSource(data["source"]),
                cause=data.get("cause"),
                occurred_at=event.occurred_at,
                group_pk=data["group"]["id"],
                contact_pk=contact_pk,
            )
            for contact_pk in data["contactIds"]
        ]


VIEW = "groups.view"
"""What following a group's events needs, at the start and for every event."""


async def _events(
    info: Info, types: Collection[str], group_pk: int | None, after: int | None
) -> AsyncGenerator[Event, None]:
    """The feed's events of ``types`` (of one group, unless None), each handed on with
    the connection's session fresh, so what a message reads is what was committed.

    The connection's principal follows its token (``graphql_api.auth.sockets``): one that
    lost ``groups.view`` since the subscription began gets ``FORBIDDEN`` instead of the
    next event, and the subscription ends."""
    feed = info.context.events
    if after is not None and after < 0:
        raise PublicError("afterEventId is an event's number, 0 or more.", code="INVALID")
    if group_pk is not None and after is None:
        # Resuming, the group may be gone: its deletion is among the events to send.
        await _existing_group(info, group_pk)
    start = after if after is not None else await feed.head()
    async for event in feed.follow(start, types, group_pk):
        if not info.context.principal.can(VIEW):
            raise PublicError(f"This needs the permission '{VIEW}', which you lack.", "FORBIDDEN")
        await _fresh(info)
        yield event


async def _fresh(info: Info) -> None:
    """The previous message is resolved: end its read, whose loaders may be stale now, so
    the next message reads what is committed and no read stays open between messages."""
    await info.context.db.release()
    info.context.forget_loaded()


async def _existing_group(info: Info, group_pk: int) -> None:
    if await info.context.row(models.Group, group_pk) is None:
        raise PublicError("No group with this id.", code="NOT_FOUND")
    await info.context.db.release()


def _subscription(description: str) -> Any:
    return strawberry.subscription(description=needing(VIEW, description), extensions=needs(VIEW))


@strawberry.type
class GroupSubscriptions:
    @_subscription("Each creation, change and deletion of a group, or of every group.")
    async def group_changed(
        self,
        info: Info,
        group_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="Global id of the group; null: every group."),
        ] = None,
        after_event_id: AfterEventId = None,
    ) -> AsyncGenerator[GroupChange, None]:
        group_pk = None if group_id is None else query_id(group_id, "Group")
        async for event in _events(info, GROUP_EVENTS, group_pk, after_event_id):
            yield GroupChange.of(event)

    @_subscription(
        "Each contact joining or leaving the group, explicit members and derived ones alike."
    )
    async def membership_changed(
        self, info: Info, group_id: GroupIdArgument, after_event_id: AfterEventId = None
    ) -> AsyncGenerator[MembershipChange, None]:
        group_pk = query_id(group_id, "Group")
        async for event in _events(info, MEMBERSHIP_EVENTS, group_pk, after_event_id):
            for index, change in enumerate(MembershipChange.each_of(event)):
                if index:
                    await _fresh(info)
                yield change
