"""GraphQL mutations of jobs: ``cancelJob``."""

from __future__ import annotations

from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.mutations import ErrorPaths, run_mutation
from graphql_api.graphql_base.relay import decode_id
from graphql_api.jobs.api.queries import JobId
from graphql_api.jobs.api.types import JobPayload
from graphql_api.jobs.service import cancel_job

JOB_BY_ID = ErrorPaths({"job_id": "id"}, input=None)
"""``cancelJob(id:)``."""


@strawberry.type
class JobMutations:
    @strawberry.mutation(
        description="Stop a bulk job (taak stoppen): a QUEUED one is CANCELLED at once; a "
        "RUNNING one gets `cancelRequested` and stops after its current chunk, keeping what "
        "its chunks did. Its owner may, and whoever holds `jobs.manage`; a finished job is "
        "`JOB_FINISHED`, one you may not see `NOT_FOUND`."
    )
    async def cancel_job(self, info: Info, id: JobId) -> JobPayload:

        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(id, "Job", ["job_id"])
            return {"job": await cancel_job(session, info.context.principal, pk)}

        return await run_mutation(info, JobPayload, JOB_BY_ID, work)
