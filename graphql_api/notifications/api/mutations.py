"""GraphQL mutations of the notification outbox, with their payload."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.graphql_base.access import needing
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import UserError
from graphql_api.graphql_base.mutations import ErrorPaths, run_mutation
from graphql_api.graphql_base.relay import decode_id
from graphql_api.notifications.api.types import NotificationDelivery
from graphql_api.notifications.service import retry_delivery

DELIVERY_BY_ID = ErrorPaths({"delivery_id": "id"}, input=None)
"""``retryDelivery(id:)``."""


@strawberry.type(description="Result of retrying a delivery.")
class DeliveryPayload:
    delivery: NotificationDelivery | None = strawberry.field(
        default=None, description="The delivery, when retried."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type
class NotificationMutations:
    @strawberry.mutation(
        description=needing(
            "deliveries.manage", "Deliver a DEAD delivery again, with fresh attempts."
        )
    )
    async def retry_delivery(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A delivery id.")],
    ) -> DeliveryPayload:

        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(id, "NotificationDelivery", ["delivery_id"])
            return {"delivery": await retry_delivery(session, info.context.principal, pk)}

        return await run_mutation(info, DeliveryPayload, DELIVERY_BY_ID, work)
