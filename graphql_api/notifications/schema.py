"""GraphQL for admins: the notification deliveries and retrying dead ones."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.graphql.context import Info
from graphql_api.graphql.errors import PublicError, UserError
from graphql_api.graphql.mutations import run_mutation
from graphql_api.graphql.relay import (
    After,
    Connection,
    First,
    Node,
    decode_id,
    global_id_field,
    paginate,
    rows_of,
)
from graphql_api.notifications.models import Delivery as DeliveryModel
from graphql_api.notifications.models import DeliveryStatus, OutboxEvent
from graphql_api.notifications.service import deliveries_query, retry_delivery
from graphql_api.pagination import Ordering
from graphql_api.repository import load_by_id

DeliveryStatusType = strawberry.enum(
    DeliveryStatus,
    name="DeliveryStatus",
    description="PENDING (due), FAILED (will retry), DELIVERED, DEAD (gave up; can be "
    "retried), SKIPPED (nothing to do).",
)
NEWEST_FIRST = Ordering((DeliveryModel.id,), descending=True)


def require_admin(info: Info) -> None:
    user = info.context.user
    if user is None or not user.is_admin:
        raise PublicError("Only admins see and retry notification deliveries.", code="FORBIDDEN")


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
    is_type_of = rows_of(DeliveryModel)

    @strawberry.field(description="The event type, e.g. `members.added`.")
    async def event_type(self, root: strawberry.Parent[DeliveryModel], info: Info) -> str:
        event = await info.context.loader(load_by_id(OutboxEvent)).load(root.event_id)
        return event.type


@strawberry.type(description="Result of retrying a delivery.")
class DeliveryPayload:
    delivery: NotificationDelivery | None = strawberry.field(
        description="The delivery, when retried."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type
class NotificationQueries:
    @strawberry.field(description="Notification deliveries, newest first (admins only).")
    async def notification_deliveries(
        self,
        info: Info,
        status: Annotated[
            DeliveryStatusType | None, strawberry.argument(description="Only this status.")
        ] = None,
        first: First = None,
        after: After = None,
    ) -> Connection[NotificationDelivery]:
        require_admin(info)
        return await paginate(
            info,
            deliveries_query(status),
            NEWEST_FIRST,
            first=first,
            after=after,
            key_of=lambda d: (d.id,),
        )


@strawberry.type
class NotificationMutations:
    @strawberry.mutation(
        description="Deliver a DEAD delivery again, with fresh attempts (admins only)."
    )
    async def retry_delivery(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A delivery id.")],
    ) -> DeliveryPayload:
        require_admin(info)

        async def work(session: AsyncSession) -> DeliveryModel:
            return await retry_delivery(session, decode_id(id, "NotificationDelivery", ["id"]))

        delivery, errors = await run_mutation(info, work)
        return DeliveryPayload(delivery=delivery, errors=errors)  # type: ignore[arg-type]
