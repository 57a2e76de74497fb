"""Starting, cancelling and reading jobs: what mutations and queries call, each inside the
caller's transaction. Running them is the runner's (``jobs.runner``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, false, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.jobs.events import record_job_changed
from graphql_api.jobs.kinds import kinds_of
from graphql_api.jobs.models import FINISHED, Job, JobItem, JobState
from graphql_api.kernel.access import Principal
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.errors import ErrorCode, UserInputError

VIEW_ALL = "jobs.view"
MANAGE_ALL = "jobs.manage"


async def start_job(
    session: AsyncSession,
    *,
    kind: str,
    owner: Principal,
    params: dict[str, Any],
    cause: str,
    items: Sequence[int] | None,
) -> Job:
    """A QUEUED job of ``kind`` for ``owner``, inside the caller's transaction (a worker
    takes it once that commits). With ``items`` its list is stored now, ascending and
    without repeats; without, the kind's ``prepare`` makes it when the job runs. The
    owner needs the kind's permission (``Forbidden``)."""
    registered = kinds_of(session).get(kind)
    if registered is None:
        raise ValueError(f"no job kind {kind!r} is registered")
    owner.require(registered.permission)
    if items is None and registered.prepare is None:
        raise ValueError(f"job kind {kind!r} has no prepare: give its items")
    now = utcnow()
    job = Job(
        kind=kind,
        state=JobState.QUEUED,
        owner_id=owner.user_id,
        as_system=owner.user_id is None,
        params=params,
        cause=cause,
        total=None,
        done=0,
        failed=0,
        changed=0,
        position=0,
        prepared=False,
        cancel_requested=False,
        errors=[],
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    await session.flush()
    if items is not None:
        await store_items(session, job, items)
    record_job_changed(session, job)
    return job


async def store_items(session: AsyncSession, job: Job, items: Sequence[int]) -> None:
    """Keep ``items`` as the job's whole list (ascending, each once) and its total."""
    ordered = sorted(set(items))
    if ordered and ordered[0] < 1:
        raise ValueError("job items are positive ids")
    if ordered:
        # One executemany of the table's INSERT: no ORM object per item.
        rows = [{"job_id": job.id, "item": item} for item in ordered]
        await session.execute(insert(JobItem.__table__), rows)
    job.total = len(ordered)
    job.prepared = True


def owns(actor: Principal, job: Job) -> bool:
    return actor.user_id is not None and job.owner_id == actor.user_id


def may_see(actor: Principal, job: Job) -> bool:
    """Its owner sees a job, and whoever holds ``jobs.view``; to anyone else it does not
    exist."""
    return actor.can(VIEW_ALL) or owns(actor, job)


def visible_jobs(actor: Principal, state: JobState | None = None) -> Select[tuple[Job]]:
    """The jobs ``actor`` may see (of ``state``, unless None), unordered."""
    query = select(Job)
    if state is not None:
        query = query.where(Job.state == state)
    if not actor.can(VIEW_ALL):
        mine = Job.owner_id == actor.user_id if actor.user_id is not None else false()
        query = query.where(mine)
    return query


async def cancel_job(session: AsyncSession, actor: Principal, job_id: int) -> Job:
    """Stop a job: a QUEUED one is CANCELLED at once; a RUNNING one is asked to stop, and
    its worker stops between two chunks (what they did stays). Its owner may, and whoever
    holds ``jobs.manage``; a job the actor may not see is NOT_FOUND."""
    job = await session.scalar(
        select(Job)
        .where(Job.id == job_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if job is None or not (may_see(actor, job) or actor.can(MANAGE_ALL)):
        raise UserInputError.single(["job_id"], ErrorCode.NOT_FOUND, "No job with this id.")
    if not owns(actor, job):
        actor.require(MANAGE_ALL)
    if job.state in FINISHED:
        raise UserInputError.single(
            ["job_id"],
            ErrorCode.JOB_FINISHED,
            f"The job has finished already ({job.state.value}); there is nothing to cancel.",
        )
    now = utcnow()
    if job.state is JobState.QUEUED:
        job.state = JobState.CANCELLED
        job.finished_at = now
        job.lease_until = None
        job.claimed_by = None
        await session.execute(JobItem.__table__.delete().where(JobItem.job_id == job.id))
    job.cancel_requested = True
    job.updated_at = now
    record_job_changed(session, job)
    return job
