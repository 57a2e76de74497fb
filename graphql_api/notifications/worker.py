"""The worker: delivers due outbox deliveries to their plugins, at least once.

Each round claims a batch by setting a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
so several workers never claim the same delivery), commits, then runs each plugin's
handler with a timeout and records the outcome. A worker that dies mid-delivery loses
nothing: when its lease runs out, another worker claims the delivery again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from graphql_api.kernel.db import is_unavailable, one_line, utcnow
from graphql_api.kernel.writing import writing_transaction
from graphql_api.notifications.models import RETRYABLE, Delivery, DeliveryStatus, OutboxEvent
from graphql_api.notifications.outbox import Event, SkipDelivery
from graphql_api.settings import Settings

logger = logging.getLogger("graphql_api.worker")

MAX_ERROR_LENGTH = 2000
MAX_BACKOFF_SECONDS = 60.0
"""The longest wait between two rounds that failed, however many failed before."""


class Deliverer(Protocol):
    """Hands one event to one plugin; the plugin manager is one (the worker needs no more)."""

    async def deliver(
        self, plugin: str, event: Event, delivery_id: int, session: AsyncSession
    ) -> None: ...


class LeaseLost(Exception):
    """The delivery was claimed again by another worker while this one handled it."""


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    plugin: str
    attempts: int
    event: Event


class Worker:
    """Delivers for one process; run several against PostgreSQL to share the work."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        deliverer: Deliverer,
        settings: Settings,
    ) -> None:
        self.sessions = sessions
        self.deliverer = deliverer
        self.settings = settings

    async def run_once(self) -> int:
        """Deliver one batch of due deliveries; returns how many were handled."""
        claimed = await self._claim()
        await asyncio.gather(*(self._deliver(c) for c in claimed))
        return len(claimed)

    async def run_until_idle(self) -> int:
        """Deliver until nothing is due (for tests and the CLI)."""
        total = 0
        while handled := await self.run_once():
            total += handled
        return total

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set. A round that fails (the database is away, say)
        is tried again after a wait that doubles with each failure, up to
        ``MAX_BACKOFF_SECONDS``, with one log line for each."""
        failures = 0
        while not stop.is_set():
            try:
                handled = await self.run_once()
                await self.purge()
                failures = 0
            except Exception as error:
                failures += 1
                handled = 0
                self._round_failed(error, self._backoff(failures))
            if not handled:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        """The wait before the next round: the poll interval, doubled for each failure."""
        poll = self.settings.outbox_poll_seconds
        return min(poll * 2**failures, max(poll, MAX_BACKOFF_SECONDS))

    @staticmethod
    def _round_failed(error: Exception, wait: float) -> None:
        if is_unavailable(error):
            logger.warning(
                "the database is unavailable (%s); next try in %.3g s", one_line(error), wait
            )
        else:
            logger.exception("worker round failed; next try in %.3g s", wait)

    async def _claim(self) -> list[Claimed]:
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.outbox_lease_seconds)
        async with writing_transaction(self.sessions) as session:
            due = (
                select(Delivery.id)
                .where(
                    Delivery.status.in_(RETRYABLE),
                    Delivery.next_attempt_at <= now,
                    or_(Delivery.lease_until.is_(None), Delivery.lease_until < now),
                )
                .order_by(Delivery.id)
                .limit(self.settings.outbox_batch_size)
            )
            # Not mutated: PostgreSQL only; the mutation run is SQLite only (docs/testing.md).
            # pragma: no mutate start
            if session.bind.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            # pragma: no mutate end
            # One statement claims: atomic under SQLite's write lock too. Claiming counts
            # as an attempt, so a worker that dies mid-delivery has used one.
            claim = (
                update(Delivery)
                .where(Delivery.id.in_(due.scalar_subquery()))
                .values(lease_until=lease, attempts=Delivery.attempts + 1)
                .returning(Delivery.id)
            )
            ids = list(await session.scalars(claim))
            if not ids:
                return []
            rows = await session.execute(
                select(Delivery.id, Delivery.plugin, Delivery.attempts, OutboxEvent)
                .join(OutboxEvent, OutboxEvent.id == Delivery.event_id)
                .where(Delivery.id.in_(ids))
                .order_by(Delivery.id)
            )
            return [
                Claimed(d_id, plugin, attempts, Event(e.id, e.type, e.occurred_at, e.data))
                for d_id, plugin, attempts, e in rows
            ]

    async def _deliver(self, claimed: Claimed) -> None:
        timeout = self.settings.outbox_handler_timeout_seconds
        try:
            async with self.sessions() as session, session.begin():
                handing_over = self.deliverer.deliver(
                    claimed.plugin, claimed.event, claimed.delivery_id, session
                )
                await asyncio.wait_for(handing_over, timeout)
                # The handler's own writes commit with this mark, or not at all.
                await self._mark_done(session, claimed, DeliveryStatus.DELIVERED, None)
        except SkipDelivery as skip:
            async with writing_transaction(self.sessions) as session:
                await self._mark_done(session, claimed, DeliveryStatus.SKIPPED, str(skip))
        except LeaseLost:
            logger.warning(
                "delivery %s to %s was taken over by another worker; this attempt's "
                "writes are rolled back",
                claimed.delivery_id,
                claimed.plugin,
            )
        except Exception as error:
            reason = (
                f"timed out after {timeout:g} s"
                if isinstance(error, TimeoutError)
                else (f"{type(error).__name__}: {error}")
            )
            await self._failed(claimed, reason[:MAX_ERROR_LENGTH])

    async def _mark_done(
        self, session: AsyncSession, claimed: Claimed, status: DeliveryStatus, note: str | None
    ) -> None:
        """Mark the delivery done, if this worker still holds it: a worker whose lease ran
        out and was claimed again (``attempts`` moved on) must not commit a second time."""
        marked = await session.execute(
            update(Delivery)
            .where(
                Delivery.id == claimed.delivery_id,
                Delivery.attempts == claimed.attempts,
                Delivery.status.in_(RETRYABLE),
            )
            .values(status=status, lease_until=None, last_error=note, delivered_at=utcnow())
        )
        if marked.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost(claimed.delivery_id)

    async def _failed(self, claimed: Claimed, reason: str) -> None:
        now = utcnow()
        dead = claimed.attempts >= self.settings.outbox_max_attempts
        delay = self.settings.outbox_retry_base_seconds * 2 ** (claimed.attempts - 1)
        delay *= 1 + random.random() / 2  # jitter: failed deliveries do not retry in step
        async with writing_transaction(self.sessions) as session:
            delivery = await session.get(Delivery, claimed.delivery_id)
            assert delivery is not None
            delivery.status = DeliveryStatus.DEAD if dead else DeliveryStatus.FAILED
            delivery.lease_until = None
            delivery.last_error = reason
            delivery.errors = [
                *delivery.errors,
                {"attempt": claimed.attempts, "at": now.isoformat(), "error": reason},
            ]
            delivery.next_attempt_at = now + timedelta(seconds=delay)
        log = logger.error if dead else logger.warning
        log(
            "delivery %s to %s failed (attempt %s): %s",
            claimed.delivery_id,
            claimed.plugin,
            claimed.attempts,
            reason,
        )

    async def purge(self) -> None:
        """Forget delivered and skipped deliveries past the retention, and their events."""
        before = utcnow() - timedelta(days=self.settings.outbox_retention_days)
        async with writing_transaction(self.sessions) as session:
            await session.execute(
                delete(Delivery).where(
                    Delivery.status.in_([DeliveryStatus.DELIVERED, DeliveryStatus.SKIPPED]),
                    Delivery.delivered_at < before,
                )
            )
            await session.execute(
                delete(OutboxEvent).where(
                    OutboxEvent.occurred_at < before,
                    ~select(Delivery.id).where(Delivery.event_id == OutboxEvent.id).exists(),
                )
            )
