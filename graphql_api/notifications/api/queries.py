"""GraphQL queries of the notification outbox."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graphql_api.graphql_base.access import guarded_field
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.relay import After, Connection, First, paginate
from graphql_api.kernel.pagination import Ordering
from graphql_api.notifications import models
from graphql_api.notifications.api.types import DeliveryStatusType, NotificationDelivery
from graphql_api.notifications.service import deliveries_query

NEWEST_FIRST = Ordering((models.Delivery.id,), descending=True)


@strawberry.type
class NotificationQueries:
    @guarded_field("deliveries.manage", "Notification deliveries, newest first.")
    async def notification_deliveries(
        self,
        info: Info,
        status: Annotated[
            DeliveryStatusType | None, strawberry.argument(description="Only this status.")
        ] = None,
        first: First = None,
        after: After = None,
    ) -> Connection[NotificationDelivery]:
        return await paginate(
            info,
            deliveries_query(status),
            NEWEST_FIRST,
            first=first,
            after=after,
            key_of=lambda d: (d.id,),
        )
