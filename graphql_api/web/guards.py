"""Answers the server gives when a GraphQL request over HTTP cannot finish: its time budget
ran out (``TIMEOUT``, 504), its client left (no answer, its work stopped), or the database
cannot be reached (``SERVICE_UNAVAILABLE``, 503). docs/reliability.md tells the rules."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphql_api.auth.middleware import PORTAL_PATH
from graphql_api.graphql_base.errors import TIMEOUT, timeout_error, unavailable_error
from graphql_api.kernel.db import is_timeout, is_unavailable, one_line
from graphql_api.kernel.interruption import holding, interrupt
from graphql_api.kernel.requests import current_request
from graphql_api.web.body_limit import arrived_at
from graphql_api.web.trusted_view import accepted_media_type

logger = logging.getLogger("graphql_api.requests")

GRAPHQL_PATHS = ("/graphql", PORTAL_PATH)
WATCH_AFTER_SECONDS = 0.05
"""How long a request runs before its client's leaving is watched for."""
CLEAN_UP_SECONDS = 5.0
"""How long a stopped request may take to roll back and return its connections."""


class RequestBudget:
    """ASGI middleware: each GraphQL request over HTTP has ``seconds`` from its first byte
    (noted by ``BodyLimit``, which reads its body first, so the reading counts) to its
    answer, and stops when its client disconnects. Stopping interrupts its SQL,
    cancels its task (rolling back what it wrote) and waits for it to let go of its
    connections, so nothing of it runs on."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in GRAPHQL_PATHS:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        arrived = arrived_at(scope)
        deadline = (loop.time() if arrived is None else arrived) + self.seconds
        client = _Client(receive)
        try:
            async with asyncio.timeout_at(deadline):
                if not await client.read_request():
                    return  # it left before it had sent its request
        except TimeoutError:
            await _answer(scope, send, HTTPStatus.GATEWAY_TIMEOUT, self._too_slow())
            return
        answering = _Answering(send)
        with holding() as held:
            work = asyncio.create_task(self.app(scope, client.receive, answering.send))
        # One future that whichever comes first ends: the answer, the client leaving, the
        # deadline. (Cheaper, on every request, than a task to wait for each.)
        ended = loop.create_future()

        def end(_: object = None) -> None:
            if not ended.done():
                ended.set_result(None)

        work.add_done_callback(end)
        client.on_left = end
        timer = loop.call_at(deadline, end)
        try:
            await ended
        finally:
            timer.cancel()
            work.remove_done_callback(end)
            client.stop_watching()
        if work.done():
            work.result()  # its exceptions are the server's to handle
            return
        await interrupt(held)
        work.cancel()
        await asyncio.wait({work}, timeout=CLEAN_UP_SECONDS)
        record = current_request()
        if client.left.is_set():
            logger.info("the client left; its request was stopped")
            if record is not None:
                record.outcome = "client_left"
            return
        if record is not None:
            record.outcome = "timeout"
        if not answering.started:
            await _answer(scope, send, HTTPStatus.GATEWAY_TIMEOUT, self._too_slow())

    def _too_slow(self) -> dict[str, object]:
        return {
            "message": f"The request took longer than {self.seconds:g} s, the limit, and was "
            "stopped; nothing it would have changed was kept. Ask for less at once.",
            "extensions": {"code": TIMEOUT},
        }


class DatabaseUnavailable:
    """ASGI middleware: a GraphQL request over HTTP that fails before GraphQL runs (its token
    check, say) because the database cannot be reached gets 503 ``SERVICE_UNAVAILABLE``, and
    one whose statement the database stopped at the time limit 504 ``TIMEOUT``, not a bare
    500. (What fails while GraphQL runs is coded by ``graphql_base.errors``.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in GRAPHQL_PATHS:
            await self.app(scope, receive, send)
            return
        answering = _Answering(send)
        try:
            await self.app(scope, receive, answering.send)
        except Exception as error:
            timed_out = is_timeout(error)
            if answering.started or not (timed_out or is_unavailable(error)):
                raise
            record = current_request()
            if timed_out:
                logger.info("a statement ran past the time limit: %s", one_line(error))
                status, answer, outcome = HTTPStatus.GATEWAY_TIMEOUT, timeout_error(), "timeout"
            else:
                logger.warning("the database is unavailable: %s", one_line(error))
                status, answer = HTTPStatus.SERVICE_UNAVAILABLE, unavailable_error()
                outcome = "unavailable"
            if record is not None:
                record.outcome = outcome
            await _answer(scope, send, status, answer.formatted)


class _Client:
    """The client's side of one request: its body, read whole first, then replayed to the
    application, while ``left`` is set once the client disconnects."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._messages: list[Message] = []
        self._watching: asyncio.Task[None] | None = None
        self._watch_soon: asyncio.TimerHandle | None = None
        self.left = asyncio.Event()
        self.on_left: Callable[[], None] = lambda: None

    async def read_request(self) -> bool:
        """Read the request's body; False when the client left before it was sent whole."""
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                return False
            self._messages.append(message)
            if not message.get("more_body", False):
                # Most requests are answered before a client could leave them; only those
                # still running after ``WATCH_AFTER_SECONDS`` get a task listening for it.
                self._watch_soon = asyncio.get_running_loop().call_later(
                    WATCH_AFTER_SECONDS, self._start_watching
                )
                return True

    def _start_watching(self) -> None:
        self._watching = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.left.set()
        self.on_left()

    def stop_watching(self) -> None:
        if self._watch_soon is not None:
            self._watch_soon.cancel()
        if self._watching is not None:
            self._watching.cancel()

    async def receive(self) -> Message:
        if self._messages:
            return self._messages.pop(0)
        await self.left.wait()
        return {"type": "http.disconnect"}


class _Answering:
    """``send``, noting whether the answer has begun (then no other can be given)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def _answer(scope: Scope, send: Send, status: HTTPStatus, error: object) -> None:
    """A GraphQL response with ``error`` alone, in the media type the client accepts."""
    media_type = accepted_media_type(Headers(scope=scope).get("accept"))
    body = json.dumps({"errors": [error]}).encode()
    response = Response(body, status_code=status, media_type=f"{media_type}; charset=utf-8")
    with contextlib.suppress(OSError):  # the client may be gone
        await response(scope, _nothing_to_receive, send)


async def _nothing_to_receive() -> Message:
    return {"type": "http.disconnect"}
