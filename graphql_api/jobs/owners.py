"""Whom a job's chunks act as: its owner, as they are now, not as they were when it started.

A chunk runs with the permissions the owner's staff role grants at that moment (as
``principal_of`` makes them for a token without narrowing), so a user deactivated or
demoted since stops their running jobs at the next chunk.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.jobs.models import Job
from graphql_api.kernel.access import SYSTEM, Forbidden, Principal
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.users.tokens import active_user_principal


async def owner_principal(session: AsyncSession, job: Job, permission: str) -> Principal:
    """The principal the job's chunks run as, holding ``permission``; ``FORBIDDEN`` when
    the owner is gone, deactivated or lacks it now."""
    if job.as_system:
        return SYSTEM
    principal = await active_user_principal(session, job.owner_id)
    if principal is None:
        raise UserInputError.single(
            (),
            ErrorCode.FORBIDDEN,
            "The user who started this job no longer exists or is deactivated.",
        )
    if not principal.can(permission):
        raise Forbidden(permission)
    return principal
