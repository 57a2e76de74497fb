"""The live feed of committed outbox events, which GraphQL subscriptions follow.

Each follower reads the events table itself, from the id after the last one it handed
on: events are numbered in commit order (see ``outbox``), so a follower never passes one
that commits later, resumes exactly after any id, and reads at its own pace, so a slow
client holds up no one else and loses nothing while the events are kept
(``GRAPHQL_API_OUTBOX_RETENTION_DAYS``). Followers wait between reads until events
commit: this process's commits wake them at once, PostgreSQL's ``NOTIFY`` carries other
processes' commits, and a poll every ``GRAPHQL_API_FEED_POLL_SECONDS`` covers the rest
(another process's writes to SQLite, a listening connection being re-made).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from graphql_api.notifications.models import OutboxEvent
from graphql_api.notifications.outbox import NOTIFY_CHANNEL, Event

logger = logging.getLogger("graphql_api.feed")

BATCH = 200
"""Events a follower reads per statement."""


class EventFeed:
    """Follows the outbox for one process's subscribers."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
        poll_seconds: float,
    ) -> None:
        self.sessions = sessions
        self.engine = engine
        self.poll_seconds = poll_seconds
        self._moved = asyncio.Event()
        """Set when events commit, then replaced: a follower that took it before reading
        finds it set if anything committed since, so no wake-up falls between the two."""
        self._listening: asyncio.Task[None] | None = None

    def committed(self) -> None:
        """Events committed (this process, or a notification): wake every follower."""
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def head(self) -> int:
        """The id of the newest committed event (0 when there is none)."""
        async with self.sessions() as session:
            newest = await session.scalar(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()))
            return newest or 0

    async def follow(
        self, after: int, types: Collection[str], group_id: int | None = None
    ) -> AsyncIterator[Event]:
        """Every committed event of ``types`` (about the group ``group_id``, unless None)
        with an id above ``after``, oldest first, then each one as it commits; it never
        ends by itself."""
        self._listen()
        wanted = [OutboxEvent.type.in_(types)]
        if group_id is not None:
            wanted.append(OutboxEvent.data["group"]["id"].as_integer() == group_id)
        position = after
        while True:
            moved = self._moved
            async with self.sessions() as session:
                rows = list(
                    await session.scalars(
                        select(OutboxEvent)
                        .where(OutboxEvent.id > position, *wanted)
                        .order_by(OutboxEvent.id)
                        .limit(BATCH)
                    )
                )
            for row in rows:
                position = row.id
                yield Event(row.id, row.type, row.occurred_at, row.data)
            if len(rows) < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(moved.wait(), self.poll_seconds)

    def _listen(self) -> None:
        """On PostgreSQL, start listening for other processes' commits, once."""
        if self.engine.dialect.name != "postgresql" or self._listening is not None:
            return
        self._listening = asyncio.get_running_loop().create_task(self._keep_listening())

    async def _keep_listening(self) -> None:
        while True:
            try:
                async with self.engine.connect() as connection:
                    raw: Any = (await connection.get_raw_connection()).driver_connection
                    closed = asyncio.Event()
                    raw.add_termination_listener(lambda _, closed=closed: closed.set())
                    await raw.add_listener(NOTIFY_CHANNEL, lambda *_: self.committed())
                    try:
                        # The poll covers what was missed while the connection was made.
                        self.committed()
                        await closed.wait()
                    finally:
                        # Never back to the pool with a listener on it.
                        await connection.invalidate()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("listening for committed events failed (%s); retrying", error)
            await asyncio.sleep(self.poll_seconds)

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
