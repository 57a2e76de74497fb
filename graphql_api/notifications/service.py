"""What admins do with deliveries: list them and give a dead one another chance."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.notifications.models import Delivery, DeliveryStatus


def deliveries_query(status: DeliveryStatus | None) -> Select[tuple[Delivery]]:
    query = select(Delivery)
    return query.where(Delivery.status == status) if status is not None else query


@requires("deliveries.manage")
async def retry_delivery(session: AsyncSession, actor: Principal, delivery_id: int) -> Delivery:
    """Make a DEAD delivery due again, with a fresh set of attempts."""
    delivery = await session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise UserInputError.single(
            ["delivery_id"], ErrorCode.NOT_FOUND, "No delivery with this id."
        )
    if delivery.status is not DeliveryStatus.DEAD:
        raise UserInputError.single(
            ["delivery_id"],
            ErrorCode.INVALID,
            f"Only a DEAD delivery is retried; this one is {delivery.status}.",
        )
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    await session.flush()
    return delivery
