"""Per-request set-up: a database session and the acting user, or HTTP 401.

Authentication happens before GraphQL runs, so an unauthenticated request gets no data
and no schema; the GraphiQL page itself holds no data and is served to browsers.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from graphql_api.api.context import RequestDb
from graphql_api.users.service import development_user, user_for_token

logger = logging.getLogger("graphql_api")

UNAUTHORIZED_BODY = json.dumps(
    {
        "errors": [
            {
                "message": "Missing or invalid API token: send 'Authorization: Bearer <token>'.",
                "extensions": {"code": "UNAUTHENTICATED"},
            }
        ]
    }
).encode()


class RequestScope:
    """ASGI middleware that opens the request's session and identifies its user."""

    def __init__(
        self, app: ASGIApp, sessions: async_sessionmaker[AsyncSession], *, dev_mode: bool
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.dev_mode = dev_mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/graphql":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        async with self.sessions() as session:
            token = _bearer_token(headers)
            if token is not None:
                user = await user_for_token(session, token)
                allowed = user is not None
            elif self.dev_mode:
                user = await development_user(session)
                allowed = True
            else:
                user = None
                allowed = _wants_graphiql_page(scope, headers)
            if not allowed:
                await _send_unauthorized(send)
                return
            if session.in_transaction():
                await session.commit()  # end the look-up's read transaction
            state = scope.setdefault("state", {})
            state["db"] = RequestDb(session)
            state["user"] = user
            await self.app(scope, receive, send)


def _bearer_token(headers: dict[bytes, bytes]) -> str | None:
    """The token of an ``Authorization`` header; "" for a header of another scheme."""
    header = headers.get(b"authorization")
    if header is None:
        return None
    scheme, _, token = header.decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _wants_graphiql_page(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """A browser asking for the GraphiQL page: a GET that carries no operation."""
    parameters = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return (
        scope["method"] == "GET"
        and not parameters.keys() & {"query", "variables", "operationName", "extensions"}
        and b"text/html" in headers.get(b"accept", b"")
    )


async def _send_unauthorized(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b'Bearer realm="graphql-api"'),
                (b"content-length", str(len(UNAUTHORIZED_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": UNAUTHORIZED_BODY})
