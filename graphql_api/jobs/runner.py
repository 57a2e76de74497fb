"""Running jobs: claimed one at a time by any number of workers, run chunk by chunk.

A worker claims a job by setting a lease and its name on it (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so workers never claim the same job; SQLite has one writer anyway). Then each
step is one transaction that locks the job row and reads it again: the first prepares its
list if the kind names it rather than gives it; each next one handles the ``chunk_size``
items after ``position`` and moves ``position``, ``done`` and ``changed`` on, committing
with the chunk's own rows and its ``job.changed`` event. So a worker killed at any moment
leaves either the whole chunk or none of it, and whoever resumes starts after the last
committed item: nothing is lost and nothing is done twice. While a chunk runs the job row
is locked (the write lock, on SQLite), so no other worker can take it over meanwhile.

A kind's ``UserInputError`` fails the job with its problems (earlier chunks stay). A
deadlock or serialization failure runs the step again at once. Any other fault is logged
and the step retried later (``attempts``, with backoff), and after ``MAX_ATTEMPTS`` the
job FAILS with code INTERNAL, its message saying no more than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from graphql_api.jobs.events import record_job_changed
from graphql_api.jobs.kinds import JobKind, JobKinds
from graphql_api.jobs.models import FINISHED, Job, JobItem, JobState
from graphql_api.jobs.owners import owner_principal
from graphql_api.jobs.schedules import CHECK_SECONDS, ScheduledJob, start_due
from graphql_api.kernel.db import is_retryable, is_unavailable, one_line, utcnow
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError
from graphql_api.kernel.writing import WriterTimeout, is_busy, writing_transaction
from graphql_api.settings import Settings

logger = logging.getLogger("graphql_api.jobs")

MAX_ATTEMPTS = 5
"""Tries of one step that fail on a fault (or whose worker dies) before the job FAILS."""
POLL_SECONDS = 0.5
"""How often an idle worker looks for a job."""
RETRY_BASE_SECONDS = 2.0
"""The wait before a failed step is tried again, doubled with each failure."""
MAX_BACKOFF_SECONDS = 60.0
INTERNAL_MESSAGE = (
    "The job stopped: a fault of the service, not of its input, failed it {attempts} times. "
    "What it did before stays; the service's log says why."
)


class _Refused(Exception):
    """A step's ``UserInputError``, with the number of items of the chunk it refused."""

    def __init__(self, problems: Sequence[Problem], items: int) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems
        self.items = items


class JobRunner:
    """Runs the jobs of the kinds it knows for one process; several share the work."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        kinds: JobKinds,
        settings: Settings,
        *,
        name: str | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float = POLL_SECONDS,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
        schedules: Sequence[ScheduledJob] = (),
    ) -> None:
        self.sessions = sessions
        self.kinds = kinds
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease = timedelta(seconds=lease_seconds or settings.job_lease_seconds)
        self.poll_seconds = poll_seconds
        self.retry_base_seconds = retry_base_seconds
        self.schedules = schedules
        self._schedules_checked = 0.0

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Run jobs until ``stop`` is set; a running job is left between two chunks, for
        any worker to take on at once. A round that fails (the database is away) is tried
        again after a wait that doubles, up to ``MAX_BACKOFF_SECONDS``."""
        failures = 0
        while not stop.is_set():
            try:
                await self._start_scheduled()
                ran = await self.run_once(stop) is not None
                failures = 0
            except Exception as error:
                failures += 1
                ran = False
                if is_unavailable(error):
                    logger.warning("the database is unavailable (%s); jobs wait", one_line(error))
                else:
                    logger.exception("running jobs failed; trying again later")
            if not ran:
                wait = min(self.poll_seconds * 2**failures, MAX_BACKOFF_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)

    async def _start_scheduled(self) -> None:
        """Queue the scheduled jobs that are due, looking every ``CHECK_SECONDS``."""
        if not self.schedules:
            return
        now = time.monotonic()
        if now - self._schedules_checked >= CHECK_SECONDS:
            self._schedules_checked = now
            await start_due(self.sessions, self.schedules)

    async def run_once(self, stop: asyncio.Event | None = None) -> int | None:
        """Claim one job and run it until it finishes, stops for now (a fault, to be
        retried) or ``stop`` is set; its id, or None when no job was due."""
        job_id = await self.claim()
        if job_id is None:
            return None
        while await self.step(job_id):
            if stop is not None and stop.is_set():
                await self.release(job_id)
                break
        return job_id

    async def run_until_idle(self) -> int:
        """Run jobs until none is due (tests, the command line); how many were run."""
        ran = 0
        while await self.run_once() is not None:
            ran += 1
        return ran

    async def claim(self) -> int | None:
        """Take the oldest due job of a known kind: QUEUED, or left by a worker (its lease
        ran out). Taking over from a worker that died counts as a failed attempt."""
        kinds = list(self.kinds)
        if not kinds:
            return None
        now = utcnow()
        due = (
            select(Job.id)
            .where(
                Job.kind.in_(kinds),
                Job.state.in_([JobState.QUEUED, JobState.RUNNING]),
                or_(Job.lease_until.is_(None), Job.lease_until < now),
            )
            .order_by(Job.id)
            .limit(1)
        )
        # A read first: an idle worker polls without taking SQLite's write lock.
        async with self.sessions() as session:
            if await session.scalar(due) is None:
                return None
        async with writing_transaction(self.sessions) as session:
            if session.bind.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            died = case((Job.claimed_by.is_not(None), 1), else_=0)
            claimed = await session.scalar(
                update(Job)
                .where(Job.id == due.scalar_subquery())
                .values(
                    claimed_by=self.name,
                    lease_until=now + self.lease,
                    attempts=Job.attempts + died,
                )
                .returning(Job.id)
            )
        return claimed

    async def step(self, job_id: int) -> bool:
        """One transaction of a claimed job: its start, or its next chunk. True while more
        follow; False once it finished, was taken over, or waits for a retry."""
        attempts = self.settings.transaction_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self._step(job_id)
            except _Refused as refused:
                await self._refused(job_id, refused)
                return False
            except Exception as error:
                transient = (
                    isinstance(error, WriterTimeout) or is_retryable(error) or is_busy(error)
                )
                if transient and attempt < attempts:
                    logger.info(
                        "job %s: its transaction was aborted by the database (%s), attempt "
                        "%s of %s",
                        job_id,
                        one_line(error),
                        attempt,
                        attempts,
                    )
                    continue
                await self._fault(job_id, error)
                return False
        raise AssertionError("unreachable")  # pragma: no cover

    async def release(self, job_id: int) -> None:
        """Give a claimed job back, for any worker to take on at once (on shutdown)."""
        async with writing_transaction(self.sessions) as session:
            await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.claimed_by == self.name)
                .values(claimed_by=None, lease_until=None)
            )

    async def _step(self, job_id: int) -> bool:
        async with writing_transaction(self.sessions) as session:
            job = await self._held(session, job_id)
            if job is None:
                return False
            kind = self.kinds[job.kind]
            if job.cancel_requested:
                await _finish(session, job, JobState.CANCELLED)
                return False
            if job.attempts >= MAX_ATTEMPTS:
                # Its workers kept dying in this step: that is no passing fault.
                await _internal(session, job)
                return False
            if not job.prepared or job.state is JobState.QUEUED:
                await self._start(session, job, kind)
            else:
                await self._chunk(session, job, kind)
            return job.state is JobState.RUNNING

    async def _start(self, session: AsyncSession, job: Job, kind: JobKind) -> None:
        """Make the job's list when the kind names it, and set it RUNNING."""
        now = utcnow()
        if not job.prepared:
            if kind.prepare is None:
                raise RuntimeError(f"job kind {job.kind!r} has no prepare, and no items")
            try:
                await kind.prepare(session, job)
            except UserInputError as error:
                raise _Refused(error.problems, 0) from error
            counted = select(func.count()).where(JobItem.job_id == job.id)
            job.total = await session.scalar(counted) or 0
            job.prepared = True
        job.state = JobState.RUNNING
        job.started_at = job.started_at or now
        self._hold(job)
        if job.total == 0:
            await _finish(session, job, JobState.SUCCEEDED)
        else:
            record_job_changed(session, job)

    async def _chunk(self, session: AsyncSession, job: Job, kind: JobKind) -> None:
        """Handle the next items after ``position``, and move the job on with them."""
        size = min(self.settings.job_chunk_size, kind.max_chunk or self.settings.job_chunk_size)
        items = list(
            await session.scalars(
                select(JobItem.item)
                .where(JobItem.job_id == job.id, JobItem.item > job.position)
                .order_by(JobItem.item)
                .limit(size)
            )
        )
        if not items:
            await _finish(session, job, JobState.SUCCEEDED)
            return
        try:
            owner = await owner_principal(session, job, kind.permission)
            changed = await kind.run_chunk(session, job, owner, items)
        except UserInputError as error:
            raise _Refused(error.problems, len(items)) from error
        # Handled items go with the chunk: the list shrinks as the job goes on.
        await session.execute(
            delete(JobItem).where(JobItem.job_id == job.id, JobItem.item <= items[-1])
        )
        job.position = items[-1]
        job.done += len(items)
        job.changed += changed
        job.attempts = 0
        self._hold(job)
        if len(items) < size or job.done >= (job.total or 0):
            await _finish(session, job, JobState.SUCCEEDED)
        else:
            record_job_changed(session, job)

    async def _refused(self, job_id: int, refused: _Refused) -> None:
        """FAILED with the problems of the refused step; what earlier chunks did stays."""
        async with writing_transaction(self.sessions) as session:
            job = await self._held(session, job_id)
            if job is None:
                return
            job.failed += refused.items
            job.errors = [_error(p.code, p.message, p.field) for p in refused.problems]
            await _finish(session, job, JobState.FAILED)

    async def _fault(self, job_id: int, error: BaseException) -> None:
        """Count a failed try of the step; retry it after a backoff, or FAIL the job."""
        async with writing_transaction(self.sessions) as session:
            job = await self._held(session, job_id)
            if job is None:
                return
            job.attempts += 1
            if job.attempts >= MAX_ATTEMPTS:
                logger.error(
                    "job %s (%s) failed for the last time (attempt %s)",
                    job_id,
                    job.kind,
                    job.attempts,
                    exc_info=error,
                )
                await _internal(session, job)
                return
            wait = min(self.retry_base_seconds * 2 ** (job.attempts - 1), MAX_BACKOFF_SECONDS)
            logger.warning(
                "job %s (%s) failed (attempt %s of %s); tried again in %.3g s",
                job_id,
                job.kind,
                job.attempts,
                MAX_ATTEMPTS,
                wait,
                exc_info=error,
            )
            job.claimed_by = None
            job.lease_until = utcnow() + timedelta(seconds=wait)
            job.updated_at = utcnow()

    async def _held(self, session: AsyncSession, job_id: int) -> Job | None:
        """The job, locked and read afresh, while this worker holds it; None when it
        finished or another worker took it over."""
        job = await session.scalar(
            select(Job)
            .where(Job.id == job_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if job is None or job.claimed_by != self.name or job.state in FINISHED:
            return None
        return job

    def _hold(self, job: Job) -> None:
        now = utcnow()
        job.lease_until = now + self.lease
        job.updated_at = now


async def _finish(session: AsyncSession, job: Job, state: JobState) -> None:
    """End the job in ``state``; its list goes, its counts stay."""
    now = utcnow()
    job.state = state
    job.finished_at = now
    job.updated_at = now
    job.claimed_by = None
    job.lease_until = None
    await session.execute(delete(JobItem).where(JobItem.job_id == job.id))
    record_job_changed(session, job)


async def _internal(session: AsyncSession, job: Job) -> None:
    """FAILED on faults of the service: a message without a trace or SQL (the log has them)."""
    job.errors = [_error(ErrorCode.INTERNAL, INTERNAL_MESSAGE.format(attempts=job.attempts))]
    await _finish(session, job, JobState.FAILED)


def _error(code: str, message: str, field: Sequence[str] = ()) -> dict[str, Any]:
    error: dict[str, Any] = {"code": str(code), "message": message}
    if field:
        error["field"] = list(field)
    return error
