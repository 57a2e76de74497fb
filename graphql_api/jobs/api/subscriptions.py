"""``jobChanged``: a job's progress as its chunks commit, following the outbox feed.

The runner records ``job.changed`` in every transaction that changes a job, so the feed
carries each chunk's progress in commit order, from any worker process. The subscription
sends the job as it is now first, then as it is after each of its events, and ends once
it has sent it finished.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import strawberry

from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import PublicError
from graphql_api.graphql_base.relay import query_id
from graphql_api.jobs import models
from graphql_api.jobs.api.queries import SEEN_BY, JobId
from graphql_api.jobs.api.types import Job
from graphql_api.jobs.events import JOB_CHANGED
from graphql_api.jobs.models import FINISHED
from graphql_api.jobs.service import may_see


async def _current(info: Info, pk: int) -> models.Job:
    """The job as committed now, read afresh; ``NOT_FOUND`` when it is gone or the caller
    may not see it (any more)."""
    await info.context.db.release()
    info.context.forget_loaded()
    job = await info.context.db.run(
        lambda session: session.get(models.Job, pk, populate_existing=True)
    )
    if job is None or not may_see(info.context.principal, job):
        raise PublicError("No job with this id.", code="NOT_FOUND")
    return job


def _shown(job: models.Job) -> tuple[Any, ...]:
    return (job.state, job.done, job.total, job.changed, job.cancel_requested, job.updated_at)


@strawberry.type
class JobSubscriptions:
    @strawberry.subscription(
        description="A bulk job's progress (voortgang): the job as it is now, then as it is "
        "after each change of its state or progress (each committed chunk); it ends once "
        "the job has SUCCEEDED, FAILED or was CANCELLED. " + SEEN_BY
    )
    async def job_changed(self, info: Info, id: JobId) -> AsyncGenerator[Job | None, None]:
        pk = query_id(id, "Job")
        feed = info.context.events
        # The feed's position first: every change after the job is read below follows.
        start = await feed.head()
        job = await _current(info, pk)
        sent = _shown(job)
        yield job  # type: ignore[misc]
        if job.state in FINISHED:
            return
        async for event in feed.follow(start, [JOB_CHANGED]):
            if event.data.get("jobId") != pk:
                continue
            job = await _current(info, pk)
            if _shown(job) != sent:
                sent = _shown(job)
                yield job  # type: ignore[misc]
            if job.state in FINISHED:
                return
