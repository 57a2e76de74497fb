"""What admins do with deliveries: list them and give a dead one another chance."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.notifications.models import RETRYABLE, Delivery, DeliveryStatus


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


@dataclass(frozen=True)
class OutboxState:
    """What monitoring reads of the outbox."""

    by_status: dict[DeliveryStatus, int]
    """Deliveries of each status, zero included."""
    oldest_due: datetime | None
    """When the delivery that has been due longest became due; None when none is."""


async def outbox_state(session: AsyncSession, now: datetime) -> OutboxState:
    """The deliveries by status, and the oldest due one (two statements)."""
    counted = await session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    by_status = dict.fromkeys(DeliveryStatus, 0) | dict(counted.all())
    oldest_due = await session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            Delivery.status.in_(RETRYABLE), Delivery.next_attempt_at <= now
        )
    )
    return OutboxState(by_status, oldest_due)
