"""Whom a job's chunks act as: its owner, as they are now, not as they were when it started.

A chunk runs with the permissions the owner's staff role grants at that moment (as
``principal_of`` makes them for a token without narrowing), so a user deactivated or
demoted since stops their running jobs at the next chunk.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.jobs.models import Job
from graphql_api.kernel.access import SYSTEM, Forbidden, Principal
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.users.models import StaffRole, User
from graphql_api.users.tokens import principal_of


async def owner_principal(session: AsyncSession, job: Job, permission: str) -> Principal:
    """The principal the job's chunks run as, holding ``permission``; ``FORBIDDEN`` when
    the owner is gone, deactivated or lacks it now."""
    if job.as_system:
        return SYSTEM
    found = None
    if job.owner_id is not None:
        found = (
            await session.execute(
                select(User, StaffRole)
                .join(StaffRole, User.role_id == StaffRole.id)
                .where(User.id == job.owner_id)
            )
        ).first()
    if found is None or not found[0].is_active:
        raise UserInputError.single(
            (),
            ErrorCode.FORBIDDEN,
            "The user who started this job no longer exists or is deactivated.",
        )
    user, role = found
    principal = principal_of(user, role)
    if not principal.can(permission):
        raise Forbidden(permission)
    return principal
