"""GraphQL queries of jobs: one by id, and the list, each showing only what the caller may
see (their own jobs; every job with ``jobs.view``)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.relay import After, Connection, First, paginate, query_id
from graphql_api.jobs import models
from graphql_api.jobs.api.types import Job, JobStateType
from graphql_api.jobs.service import visible_jobs
from graphql_api.kernel.pagination import Ordering

NEWEST_FIRST = Ordering((models.Job.id,), descending=True)
SEEN_BY = "Your own jobs; every job with `jobs.view`."

JobId = Annotated[strawberry.ID, strawberry.argument(description="Global id of the job.")]


async def visible_job(info: Info, job_id: str) -> Any:
    """The job of a global id, or None when it does not exist or the caller may not see
    it (never an error saying it exists); a malformed id is ``INVALID_ID``."""
    return await Job.findable.find(info, query_id(job_id, "Job"))  # type: ignore[attr-defined]


@strawberry.type
class JobQueries:
    @strawberry.field(
        description="A bulk job (taak) by id; null when there is none you may see. " + SEEN_BY
    )
    async def job(self, info: Info, id: JobId) -> Job | None:
        return await visible_job(info, id)

    @strawberry.field(description="Bulk jobs (taken), newest first. " + SEEN_BY)
    async def jobs(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        state: Annotated[
            JobStateType | None, strawberry.argument(description="Only jobs in this state.")
        ] = None,
    ) -> Connection[Job]:
        return await paginate(
            info,
            visible_jobs(info.context.principal, state),
            NEWEST_FIRST,
            first=first,
            after=after,
            key_of=lambda job: (job.id,),
        )
