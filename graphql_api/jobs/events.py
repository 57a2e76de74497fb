"""``job.changed``: the outbox event each change of a job's state or progress records, in
the transaction that makes the change, so ``jobChanged`` follows jobs as subscriptions
follow groups (in commit order, across processes).

The event goes through the outbox's pending events, which it writes when the transaction
commits (``notifications.outbox``): numbered in commit order, and forgotten on rollback.
It is for the live feed only (``FEED_EVENTS``), so it has no deliveries.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.jobs.models import Job
from graphql_api.notifications import outbox

JOB_CHANGED = "job.changed"


def job_event_data(job: Job) -> dict[str, Any]:
    return {"jobId": job.id, "state": job.state.value, "done": job.done, "total": job.total}


def record_job_changed(session: AsyncSession, job: Job) -> None:
    """Record ``job.changed`` with the job as it is now; written when the transaction
    commits, with nothing to deliver (no plugin subscribes to it)."""
    outbox.record_event(session, JOB_CHANGED, job_event_data(job))
