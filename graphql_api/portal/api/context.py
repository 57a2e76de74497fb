"""What every portal resolver gets: the request's database access and the session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from strawberry.types import Info as StrawberryInfo

from graphql_api.graphql_base.context import RequestDb
from graphql_api.graphql_base.errors import PublicError
from graphql_api.portal.accounts import PortalSession
from graphql_api.settings import Settings


@dataclass
class PortalContext:
    db: RequestDb
    portal: PortalSession | None
    """The contact's live session; None before logging in."""
    settings: Settings
    address: str
    """The client's address, which login attempts are counted by."""
    today: date
    connection_params: dict[str, Any] | None = None

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(minutes=self.settings.portal_session_minutes)

    def session(self) -> PortalSession:
        """The live session, or a refusal asking to log in."""
        if self.portal is None:
            raise PublicError(
                "Log in first: send 'Authorization: Bearer <session token>' from portalLogin.",
                code="UNAUTHENTICATED",
            )
        return self.portal

    def forget_loaded(self) -> None:
        """Nothing is cached per request here; ``run_mutation`` calls it after a change."""


PortalInfo = StrawberryInfo[PortalContext, None]
