"""Who is calling: one authentication backend for HTTP requests and WebSocket connections.

Starlette's ``AuthenticationMiddleware`` runs it before anything else; what it finds is
``request.user``, a ``StaffUser`` carrying the ``Principal`` that services receive as the
actor. A WebSocket client may instead send its token in the ``connection_init`` payload;
``TokenBackend.principal_for`` checks that one the same way.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection
from starlette.responses import Response

from graphql_api.auth.token_cache import TokenCache
from graphql_api.kernel.access import Principal
from graphql_api.portal.accounts import SESSION_PREFIX, PortalSession, check_session
from graphql_api.users.accounts import development_principal
from graphql_api.users.tokens import UNKNOWN_TOKEN, TokenRefused, check_token, hash_token

LAST_USED_PRECISION = timedelta(minutes=1)
"""``lastUsedAt`` is written at most this often per token, to keep writes off the hot path."""


class StaffUser(BaseUser):
    """``request.user`` of an authenticated request."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.principal.name


class PortalUser(BaseUser):
    """``request.user`` of a request with a live portal session: a contact."""

    def __init__(self, session: PortalSession) -> None:
        self.session = session

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return f"portal contact {self.session.contact_id}"


class TokenBackend(AuthenticationBackend):
    """Bearer API tokens of staff and portal sessions of contacts; in development mode,
    no token on the staff endpoint acts as the first admin."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cache: TokenCache,
        *,
        dev_mode: bool,
        portal_session_lifetime: timedelta = timedelta(minutes=30),
    ) -> None:
        self.sessions = sessions
        self.cache = cache
        self.dev_mode = dev_mode
        self.portal_session_lifetime = portal_session_lifetime

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        token = bearer_token(conn.headers.get("authorization"))
        if token is not None and token.startswith(SESSION_PREFIX):
            return AuthCredentials(["portal"]), PortalUser(await self.portal_session(token))
        if token is None and not (self.dev_mode and conn.url.path == "/graphql"):
            return None
        if token is None:
            async with self.sessions() as session:
                principal = await development_principal(session)
        else:
            principal = await self.principal_for(token)
        return AuthCredentials(sorted(principal.permissions)), StaffUser(principal)

    async def portal_session(self, token: str) -> PortalSession:
        """The live portal session of ``token``, its expiry slid forward; never cached, so a
        logout ends it at once."""
        async with self.sessions() as session, session.begin():
            found = await check_session(session, token, self.portal_session_lifetime)
        if found is None:
            raise AuthenticationError("This portal session has ended; log in again.")
        return found

    async def principal_for(self, token: str) -> Principal:
        """The principal of ``token``; ``AuthenticationError`` saying why there is none."""
        key = hash_token(token)
        outcome = self.cache.get(key)
        if outcome is None:
            async with self.sessions() as session, session.begin():
                outcome = await check_token(session, token, note_use_after=LAST_USED_PRECISION)
            self.cache.put(key, outcome)
        if isinstance(outcome, TokenRefused):
            raise AuthenticationError(outcome.reason)
        return outcome


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization`` header; "" for a header of another scheme."""
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def unauthorized(reason: str = UNKNOWN_TOKEN.reason) -> Response:
    """401 with a GraphQL-shaped body saying why, and no data."""
    body = {"errors": [{"message": reason, "extensions": {"code": "UNAUTHENTICATED"}}]}
    return Response(
        json.dumps(body),
        status_code=401,
        media_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="graphql-api"'},
    )


def on_auth_error(conn: HTTPConnection, error: Exception) -> Response:
    return unauthorized(str(error))
