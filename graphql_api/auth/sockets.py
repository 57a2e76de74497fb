"""WebSocket connections: their rights follow their token, their subscriptions are bounded,
and they end when the server stops.

A connection authenticates once, in its ``connection_init`` message or its upgrade request,
but may stay open for hours. So that it keeps no right its token has lost, the
graphql-transport-ws handler (``graphql_api.web.trusted_view.TrustedSubscribe``) asks
``SocketGuard.principal_for`` again:

- before each new operation, which then runs with the permissions of that moment;
- before each event a subscription hands on (``graphql_api.notifications.feed.RECHECK``);
- every ``recheck_seconds`` (half of ``GRAPHQL_API_TOKEN_CACHE_SECONDS``) while it is open.

Each check goes through the token cache of HTTP requests (``token_cache``): a revocation, a
deactivation or a role change made in this process is seen at the next check, one made in
another process once the cached check is ``GRAPHQL_API_TOKEN_CACHE_SECONDS`` old, and many
connections of one token cost one look-up per that time. A token that no longer opens
anything (revoked, expired, its user deactivated) closes the connection with 4403; a
narrower one narrows what the connection may do from the next operation and event on.

A principal runs at most ``per_connection`` subscriptions on one connection and
``per_principal`` across all of them (in this process); over either, a ``subscribe`` is
answered with an ``error`` message, code ``LIMIT_EXCEEDED``, and the connection stays.

When the server is told to stop (SIGTERM, SIGINT), every open connection is closed with
1001 (going away) before the server stops serving, and the process ends within
``GRAPHQL_API_SHUTDOWN_SECONDS`` whatever is still running (``stop_within``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from types import FrameType
from typing import Any, Protocol

from graphql_api.auth.backend import TokenBackend, bearer_token
from graphql_api.kernel.access import Principal

logger = logging.getLogger("graphql_api.sockets")

GOING_AWAY = 1001
"""The close code of connections the server closes because it stops (RFC 6455)."""
FORBIDDEN = 4403
"""graphql-transport-ws's close code for a client that may not (or no longer) connect."""
MOST_CLOSING_SECONDS = 1.0
"""At most this long (and a quarter of the shutdown time) is spent closing connections
before the server itself stops."""

SignalHandler = Callable[[int, FrameType | None], Any]


def socket_token(
    connection_params: Mapping[str, Any] | None, upgrade_headers: Mapping[str, str]
) -> str | None:
    """The bearer token a connection authenticated with: its ``connection_init`` payload's
    ``Authorization``, else its upgrade request's; None for neither (development mode)."""
    params = connection_params or {}
    header = params.get("Authorization", params.get("authorization"))
    if isinstance(header, str):
        return bearer_token(header)
    return bearer_token(upgrade_headers.get("authorization"))


class SocketGuard:
    """What the WebSocket connections of one endpoint may do, checked again and again."""

    def __init__(
        self,
        backend: TokenBackend,
        *,
        token_cache_seconds: float,
        per_connection: int,
        per_principal: int,
    ) -> None:
        self.backend = backend
        self.recheck_seconds = token_cache_seconds / 2 if token_cache_seconds > 0 else 0.5
        """How often an open connection's token is checked again."""
        self.per_connection = per_connection
        self.per_principal = per_principal
        self._running: Counter[Hashable] = Counter()

    async def principal_for(self, token: str) -> Principal:
        """Who ``token`` stands for now; ``AuthenticationError`` saying why nobody."""
        return await self.backend.principal_for(token)

    def admit(self, principal: Principal) -> Hashable | None:
        """Count one more subscription of ``principal``: the key to ``release`` it with, or
        None when the principal runs ``per_principal`` already."""
        key = ("user", principal.user_id) if principal.user_id is not None else principal.name
        if self._running[key] >= self.per_principal:
            return None
        self._running[key] += 1
        return key

    def release(self, key: Hashable) -> None:
        self._running[key] -= 1
        if self._running[key] <= 0:
            del self._running[key]


class Closable(Protocol):
    async def going_away(self) -> None:
        """Close the connection with 1001 and end what it runs."""


class OpenSockets:
    """The open WebSocket connections of this process, to close when it stops."""

    def __init__(self) -> None:
        self._open: set[Closable] = set()
        self.stopping = False
        """The server is stopping: a connection opened now is closed at once."""
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, socket: Closable) -> None:
        self._open.add(socket)

    def discard(self, socket: Closable) -> None:
        self._open.discard(socket)

    async def close_all(self, seconds: float) -> None:
        """Close every open connection with 1001, waiting at most ``seconds`` for them."""
        self.stopping = True
        closing = [asyncio.ensure_future(socket.going_away()) for socket in list(self._open)]
        if closing:
            await asyncio.wait(closing, timeout=seconds)
            logger.info("closed %d WebSocket connection(s): the server stops", len(closing))

    def then(self, signum: int, frame: FrameType | None, seconds: float, handler: Any) -> None:
        """On the event loop: close every connection, then hand the signal on."""

        async def close_then_stop() -> None:
            try:
                await self.close_all(seconds)
            finally:
                handler(signum, frame)

        task = asyncio.get_running_loop().create_task(close_then_stop())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


OPEN_SOCKETS = OpenSockets()
"""This process's open WebSocket connections (each served process has its own)."""

_deadline_started = threading.Event()


def stop_within(seconds: float, handler: SignalHandler) -> SignalHandler:
    """A handler for SIGTERM and SIGINT in front of the server's ``handler`` (uvicorn's,
    which stops serving, waits for what runs, then shuts the application down):

    1. it makes sure the process has ended ``seconds`` after the first signal, whatever is
       still running then (a last resort, logged as an error);
    2. it closes every open WebSocket connection with 1001, for at most a second, so
       clients know to come back, and only then hands the signal on. A second signal
       while that runs goes on at once (uvicorn: a second Ctrl-C quits)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if not _deadline_started.is_set():
            _deadline_started.set()
            # A moment early, so that the process is gone by ``seconds``.
            timer = threading.Timer(seconds - min(0.5, seconds / 10), _end_now, args=(seconds,))
            timer.daemon = True
            timer.start()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or OPEN_SOCKETS.stopping:
            handler(signum, frame)
            return
        OPEN_SOCKETS.stopping = True
        closing = min(MOST_CLOSING_SECONDS, seconds / 4)
        # A signal handler runs between two steps of the loop: schedule, do not run.
        loop.call_soon_threadsafe(OPEN_SOCKETS.then, signum, frame, closing, handler)

    return handle


def _end_now(seconds: float) -> None:
    logger.error(
        "still stopping %s s after the signal (GRAPHQL_API_SHUTDOWN_SECONDS): "
        "ending the process now",
        seconds,
    )
    logging.shutdown()
    os._exit(1)


def stop_served_process_within(seconds: float) -> None:
    """In a process uvicorn serves (a worker of ``serve --workers N``), put ``stop_within``
    in front of uvicorn's own signal handlers; elsewhere (tests, another server, a thread
    that is not the main one, handlers in front already) leave signals alone."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        current = signal.getsignal(signum)
        if callable(current) and _is_uvicorns(current):
            signal.signal(signum, stop_within(seconds, current))


def _is_uvicorns(handler: Callable[..., Any]) -> bool:
    """``handler`` is a uvicorn server's own (a bound method of it)."""
    return type(getattr(handler, "__self__", None)).__module__.startswith("uvicorn.")


__all__ = [
    "FORBIDDEN",
    "GOING_AWAY",
    "OPEN_SOCKETS",
    "SocketGuard",
    "socket_token",
    "stop_served_process_within",
    "stop_within",
]
