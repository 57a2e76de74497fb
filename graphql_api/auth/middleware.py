"""Per-request set-up of ``/graphql`` and ``/portal/graphql``: refuse callers of the wrong
kind, open the request's session.

Authentication (``auth.backend``) has run before: an unauthenticated request gets no data
and no schema; the GraphiQL page itself holds no data and is served to browsers. A
WebSocket connection keeps one session while it lasts; it may still authenticate in its
``connection_init`` message (see ``GraphQLEndpoint.on_ws_connect``).
"""

from __future__ import annotations

from urllib.parse import parse_qs

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from graphql_api.auth.backend import PortalUser, StaffUser, unauthorized
from graphql_api.graphql_base.context import RequestDb

PORTAL_PATH = "/portal/graphql"
WRONG_ENDPOINT = {
    "/graphql": "A portal session is not accepted here; contacts use /portal/graphql.",
    PORTAL_PATH: "Staff API tokens are not accepted on the portal; use /graphql.",
}


class RequestScope:
    """ASGI middleware that opens the request's session for a caller of the right kind:
    staff on ``/graphql``, contacts (or nobody yet, to log in) on ``/portal/graphql``."""

    def __init__(self, app: ASGIApp, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] not in ("http", "websocket") or path not in WRONG_ENDPOINT:
            await self.app(scope, receive, send)
            return
        user = scope.get("user")
        expected = PortalUser if path == PORTAL_PATH else StaffUser
        if isinstance(user, StaffUser | PortalUser) and not isinstance(user, expected):
            await unauthorized(WRONG_ENDPOINT[path])(scope, receive, send)
            return
        anonymous_allowed = (
            path == PORTAL_PATH or scope["type"] == "websocket" or _wants_graphiql_page(scope)
        )
        if not isinstance(user, expected) and not anonymous_allowed:
            await unauthorized()(scope, receive, send)
            return
        db = scope.setdefault("state", {})["db"] = RequestDb(self.sessions)
        try:
            await self.app(scope, receive, send)
        finally:
            await db.close()


def _wants_graphiql_page(scope: Scope) -> bool:
    """A browser asking for the GraphiQL page: a GET that carries no operation (a
    ``documentId`` names one, so a link to a trusted document needs its caller's token)."""
    headers = dict(scope["headers"])
    parameters = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (
        scope["method"] == "GET"
        and not parameters.keys()
        & {"query", "documentId", "variables", "operationName", "extensions"}
        and b"text/html" in headers.get(b"accept", b"")
    )
