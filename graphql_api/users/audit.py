"""The audit log: who changed who may do what, and when."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.kernel.access import Principal
from graphql_api.kernel.pagination import Ordering
from graphql_api.users.models import AuditEntry

NEWEST_FIRST = Ordering((AuditEntry.id,), descending=True)


def record(
    session: AsyncSession, actor: Principal, action: str, subject: str, **details: Any
) -> None:
    """Add an audit row to the caller's transaction, so it commits with the change."""
    session.add(
        AuditEntry(actor_id=actor.user_id, action=action, subject=subject[:300], details=details)
    )
