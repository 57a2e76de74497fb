"""The live feed of committed outbox events, which GraphQL subscriptions follow.

One reader per process reads the events table: each time events commit it reads them
once, with one statement per ``BATCH`` whatever the number of subscriptions, and hands
each event to the followers that want it. So a thousand subscriptions cost the database
what one does; the first version read the table once per subscription on every commit
and every poll, and 600 subscriptions held up every other request for seconds.

Events are numbered in commit order (see ``outbox``), so the reader never passes one that
commits later, and a follower resumes exactly after any id. A follower behind the reader
(one resuming after an old ``afterEventId``, or one whose client reads so slowly that more
than ``BEHIND`` events wait for it) reads the table itself, at its own pace, until it has
caught up: a slow client holds up no one else and loses nothing while the events are kept
(``GRAPHQL_API_OUTBOX_RETENTION_DAYS``), and what waits for it in memory is bounded. At
most ``CATCHING_UP`` followers read at once, so followers never take more than a few of
the pool's connections.

The reader waits between reads until events commit: this process's commits wake it at
once, PostgreSQL's ``NOTIFY`` carries other processes' commits, and a poll every
``GRAPHQL_API_FEED_POLL_SECONDS`` covers the rest (another process's writes to SQLite, a
listening connection being re-made).

Whoever serves a follower may check, before each event goes out, that its client may still
have it: a WebSocket connection sets ``RECHECK`` (its token may have been revoked since).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextvars import ContextVar
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from graphql_api.notifications.models import OutboxEvent
from graphql_api.notifications.outbox import NOTIFY_CHANNEL, Event

logger = logging.getLogger("graphql_api.feed")

BATCH = 200
"""Events read per statement."""
BEHIND = 1000
"""Events that may wait in memory for one follower; beyond, it reads the table itself."""
CATCHING_UP = 4
"""Followers reading the table themselves at once; the others wait their turn."""
CLOSING_SECONDS = 2.0
"""How long ``close`` waits for the reader and the listening connection to end."""

Recheck = Callable[[], Awaitable[None]]
RECHECK: ContextVar[Recheck | None] = ContextVar("graphql_api_feed_recheck", default=None)
"""Awaited before each event a follower hands on, when set where the follower runs: the
transport's check that its client may still follow. It raises to end the following (a
WebSocket connection whose token was revoked closes, and nothing more goes out)."""


class _Follower:
    """One ``follow``: what it wants, how far it got, and the events waiting for it."""

    def __init__(self, types: Collection[str], group_id: int | None, position: int) -> None:
        self.types = frozenset(types)
        self.group_id = group_id
        self.position = position
        """The id of the last event handed on (or skipped as unwanted)."""
        self.live = False
        """True: the reader hands it every wanted event after ``position``."""
        self.waiting: deque[Event] = deque()
        self.woken = asyncio.Event()

    def wants(self, event: Event) -> bool:
        if event.type not in self.types:
            return False
        group = event.data.get("group")
        return self.group_id is None or (
            isinstance(group, dict) and group.get("id") == self.group_id
        )


class EventFeed:
    """Follows the outbox for one process's subscribers: it reads through ``sessions`` and,
    on PostgreSQL, listens for other processes' commits on a connection of ``engine`` (the
    database itself, never a transaction-mode pooler)."""

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
        """Set when events commit, then replaced: the reader takes it before reading, so it
        finds it set if anything committed since, and no wake-up falls between the two."""
        self._read_to: int | None = None
        """Every event up to this id was handed to the live followers; None before the
        reader's first read."""
        self._next_read: asyncio.Future[int] | None = None
        """Resolved, with ``_read_to``, by the first read that starts after it was made."""
        self._followers: set[_Follower] = set()
        self._by_group: dict[int | None, set[_Follower]] = {}
        """The followers of each group's events (None: of every group's)."""
        self._catching_up = asyncio.Semaphore(CATCHING_UP)
        self._reading: asyncio.Task[None] | None = None
        self._listening: asyncio.Task[None] | None = None
        self._closed = False

    def committed(self) -> None:
        """Events committed (this process, or a notification): wake the reader."""
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def head(self) -> int:
        """The id of the newest committed event (0 when there is none): what the reader
        found in a read that started after this call. Callers at the same time share it."""
        self._start()
        if self._next_read is None:
            self._next_read = asyncio.get_running_loop().create_future()
            # Retrieved, so a failed read nobody waits for any more logs nothing twice.
            self._next_read.add_done_callback(lambda f: f.cancelled() or f.exception())
            self.committed()
        return await asyncio.shield(self._next_read)

    async def follow(
        self, after: int, types: Collection[str], group_id: int | None = None
    ) -> AsyncIterator[Event]:
        """Every committed event of ``types`` (about the group ``group_id``, unless None)
        with an id above ``after``, oldest first, then each one as it commits; it ends
        only when the feed closes."""
        recheck = RECHECK.get()
        follower = _Follower(types, group_id, after)
        self._followers.add(follower)
        self._by_group.setdefault(group_id, set()).add(follower)
        self._start()
        self.committed()  # the reader polls while anyone follows
        try:
            while not self._closed:
                if follower.waiting:
                    event = follower.waiting.popleft()
                    if event.id <= follower.position:
                        continue  # read from the table already, or resuming after a later id
                    follower.position = event.id
                    if recheck is not None:
                        await recheck()
                    yield event
                elif follower.live:
                    follower.woken.clear()
                    await follower.woken.wait()
                elif self._read_to is None:
                    await self.head()  # the reader's first read tells where it starts
                else:
                    # From here on the reader hands it each event after ``read_to``; what
                    # lies between its position and there, it reads from the table itself.
                    read_to, follower.live = self._read_to, True
                    while follower.position < read_to:
                        events = await self._read_behind(follower, read_to)
                        for event in events:
                            follower.position = event.id
                            if recheck is not None:
                                await recheck()
                            yield event
                        if len(events) < BATCH:
                            follower.position = read_to
        finally:
            self._followers.discard(follower)
            of_group = self._by_group.get(group_id, set())
            of_group.discard(follower)
            if not of_group:
                self._by_group.pop(group_id, None)

    async def _read_behind(self, follower: _Follower, read_to: int) -> list[Event]:
        """The next events a follower wants after its position, up to ``read_to``."""
        wanted = [OutboxEvent.type.in_(follower.types)]
        if follower.group_id is not None:
            wanted.append(OutboxEvent.data["group"]["id"].as_integer() == follower.group_id)
        async with self._catching_up, self.sessions() as session:
            rows = await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.id > follower.position, OutboxEvent.id <= read_to, *wanted)
                .order_by(OutboxEvent.id)
                .limit(BATCH)
            )
            return [Event(row.id, row.type, row.occurred_at, row.data) for row in rows]

    def _start(self) -> None:
        """Start the reader (and, on PostgreSQL, listening for other processes' commits)."""
        if self._reading is None:
            self._reading = asyncio.get_running_loop().create_task(self._keep_reading())
        if self.engine.dialect.name == "postgresql" and self._listening is None:
            self._listening = asyncio.get_running_loop().create_task(self._keep_listening())

    async def _keep_reading(self) -> None:
        while True:
            moved = self._moved
            asked, self._next_read = self._next_read, None
            try:
                await self._read()
            except asyncio.CancelledError:
                if asked is not None:
                    asked.cancel()
                raise
            except Exception as error:
                logger.warning("reading committed events failed (%s); retrying", error)
                if asked is not None:
                    asked.set_exception(error)
                await asyncio.sleep(self.poll_seconds)
                continue
            if asked is not None:
                asked.set_result(self._read_to or 0)
            if self._next_read is not None:
                continue  # asked while reading: read again
            # Nobody following: nothing to poll for until someone asks or events commit.
            timeout = self.poll_seconds if self._followers else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(moved.wait(), timeout)

    async def _read(self) -> None:
        """Hand every event committed after ``_read_to`` to the live followers wanting it;
        with no follower live, just move ``_read_to`` to the newest event."""
        if self._read_to is None or not any(f.live for f in self._followers):
            async with self.sessions() as session:
                newest = await session.scalar(select(func.max(OutboxEvent.id))) or 0
            if self._read_to is None or not any(f.live for f in self._followers):
                # No follower went live while the statement ran, or none could.
                self._read_to = max(self._read_to or 0, newest)
                return
        while True:
            async with self.sessions() as session:
                rows = list(
                    await session.scalars(
                        select(OutboxEvent)
                        .where(OutboxEvent.id > self._read_to)
                        .order_by(OutboxEvent.id)
                        .limit(BATCH)
                    )
                )
            for row in rows:
                self._hand_on(Event(row.id, row.type, row.occurred_at, row.data))
            if len(rows) < BATCH:
                return

    def _hand_on(self, event: Event) -> None:
        group = event.data.get("group")
        group_id = group.get("id") if isinstance(group, dict) else None
        of_every_group = self._by_group.get(None, set())
        of_this_group = self._by_group.get(group_id, set()) if group_id is not None else set()
        for follower in itertools.chain(of_every_group, of_this_group):
            if not follower.live or not follower.wants(event):
                continue
            if len(follower.waiting) >= BEHIND:
                # Too far behind to keep in memory: it reads the table itself from its
                # position, which the events dropped here all lie after.
                follower.live = False
                follower.waiting.clear()
            else:
                follower.waiting.append(event)
            follower.woken.set()
        self._read_to = event.id

    async def _keep_listening(self) -> None:
        """On PostgreSQL, wake the reader whenever another process commits events."""
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
        """Stop reading and listening, and end every ``follow``; within
        ``CLOSING_SECONDS`` whatever they are waiting for."""
        self._closed = True
        for follower in self._followers:
            follower.woken.set()
        if self._next_read is not None:
            self._next_read.cancel()
        tasks = [task for task in (self._reading, self._listening) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSING_SECONDS)
