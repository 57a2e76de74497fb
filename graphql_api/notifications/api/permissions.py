"""Who may see and retry notification deliveries: admins only."""

from __future__ import annotations

from graphql_api.api.context import Info
from graphql_api.api.errors import PublicError


def require_admin(info: Info) -> None:
    user = info.context.user
    if user is None or not user.is_admin:
        raise PublicError("Only admins see and retry notification deliveries.", code="FORBIDDEN")
