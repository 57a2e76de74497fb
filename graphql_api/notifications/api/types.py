"""GraphQL object types of the notification outbox."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.enums import described_enum
from graphql_api.graphql_base.nodes import findable
from graphql_api.graphql_base.relay import Node, global_id_field, rows_of
from graphql_api.notifications import models
from graphql_api.notifications.models import DeliveryStatus

DeliveryStatusType = described_enum(
    DeliveryStatus,
    "Where a delivery stands.",
    {
        DeliveryStatus.PENDING: "Due: a worker delivers it next.",
        DeliveryStatus.FAILED: "The last attempt failed; it is retried after a backoff.",
        DeliveryStatus.DELIVERED: "The plugin took it.",
        DeliveryStatus.DEAD: "Gave up after the last attempt; `retryDelivery` tries again.",
        DeliveryStatus.SKIPPED: "The plugin had nothing to do.",
    },
)


@findable(models.Delivery, "deliveries.manage")
@strawberry.type(description="One event delivered to one plugin (the notification outbox).")
class NotificationDelivery(Node):
    id: strawberry.ID = global_id_field("NotificationDelivery")
    plugin: str = strawberry.field(description="The plugin it is for, e.g. `email_notifications`.")
    status: DeliveryStatusType = strawberry.field(description="Where it stands.")
    attempts: int = strawberry.field(description="Attempts made so far.")
    last_error: str | None = strawberry.field(
        description="Why the last attempt failed, or why it was skipped."
    )
    created_at: datetime = strawberry.field(description="When the change happened.")
    delivered_at: datetime | None = strawberry.field(description="When it was delivered.")
    is_type_of = rows_of(models.Delivery)

    @strawberry.field(description="The event type, e.g. `members.added`.")
    async def event_type(self, root: strawberry.Parent[models.Delivery], info: Info) -> str:
        event = await info.context.row(models.OutboxEvent, root.event_id)
        return event.type
