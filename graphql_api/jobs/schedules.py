"""Jobs started every so often (a plugin's nightly pull from an outside service).

Each schedule has a row in ``job_schedules`` with the time it is next due. A worker starts
a due job by moving that time on with a conditional UPDATE in the transaction that queues
the job: of several workers looking at once, one moves it and the others see it moved, so
a period starts one job however many workers run. A schedule seen for the first time is
first due one period later, not at once: a restart does not start it again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from graphql_api.jobs.models import JobSchedule
from graphql_api.jobs.service import start_job
from graphql_api.kernel.access import SYSTEM
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.writing import writing_transaction

logger = logging.getLogger("graphql_api.jobs")

CHECK_SECONDS = 30.0
"""How often a worker looks for a due schedule."""


@dataclass(frozen=True)
class ScheduledJob:
    """Start a job of ``kind`` with ``params`` every ``every``, as the system."""

    kind: str
    every: timedelta
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.every < timedelta(minutes=1):
            raise ValueError(f"a scheduled job runs at most once a minute, not every {self.every}")

    @property
    def name(self) -> str:
        """The schedule's key: its kind, and its parameters when it has any."""
        if not self.params:
            return self.kind
        return f"{self.kind} {json.dumps(dict(self.params), sort_keys=True)}"


async def start_due(
    sessions: async_sessionmaker[AsyncSession],
    schedules: Sequence[ScheduledJob],
    now: datetime | None = None,
) -> int:
    """Queue a job for each schedule due at ``now`` (default: the present), each in a
    transaction of its own; how many were queued."""
    started = 0
    for schedule in schedules:
        at = now or utcnow()
        # IntegrityError: another worker saw a new schedule first, at the same moment.
        with contextlib.suppress(IntegrityError):
            started += await _start_if_due(sessions, schedule, at)
    return started


async def _start_if_due(
    sessions: async_sessionmaker[AsyncSession], schedule: ScheduledJob, at: datetime
) -> int:
    async with writing_transaction(sessions) as session:
        if await _due(session, schedule, at):
            job = await start_job(
                session,
                kind=schedule.kind,
                owner=SYSTEM,
                params=dict(schedule.params),
                cause=f"scheduled every {schedule.every}",
                items=None,
            )
            await session.flush()
            logger.info("started scheduled job %s (%s)", job.id, schedule.name)
            return 1
    return 0


async def _due(session: AsyncSession, schedule: ScheduledJob, at: datetime) -> bool:
    """Whether ``schedule`` is due at ``at``, moving its next time on when it is."""
    known = await session.scalar(
        select(JobSchedule.next_run_at).where(JobSchedule.name == schedule.name)
    )
    if known is None:
        await session.execute(
            insert(JobSchedule).values(name=schedule.name, next_run_at=at + schedule.every)
        )
        return False
    moved = await session.execute(
        update(JobSchedule)
        .where(JobSchedule.name == schedule.name, JobSchedule.next_run_at <= at)
        .values(next_run_at=at + schedule.every)
    )
    return moved.rowcount == 1
