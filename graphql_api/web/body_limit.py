"""What a request body must be before anything reads it: within a size, in time, and not
compressed.

- A body whose ``Content-Length`` says it is too large is refused at once; one sent in
  chunks without it is read up to the limit and refused as soon as it passes it: 413
  ``BODY_TOO_LARGE``.
- A body not received whole within ``read_seconds`` of the request's first byte is
  refused: 408 ``BODY_READ_TIMEOUT``. A client that sends a few bytes of what its
  ``Content-Length`` promised and then nothing (a slow loris) holds the server no longer.
- A body with a ``Content-Encoding`` (``gzip``, ``br``...) is refused unread: 415
  ``UNSUPPORTED_CONTENT_ENCODING``. GraphQL requests are small; decompressing them would
  only let a small body grow large behind the size limit.

Each refusal is a GraphQL error with its code, the connection closed after it (the rest
of the body is never read), and nothing parses the body. A body within the limits reaches
the application as it came; the time it arrived is noted in the request's state
(``arrived_at``), so the request's time budget (``guards.RequestBudget``) counts the
reading too. A client that leaves before its body is whole gets no answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphql_api.kernel.requests import current_request

BODY_TOO_LARGE = "BODY_TOO_LARGE"
BODY_READ_TIMEOUT = "BODY_READ_TIMEOUT"
UNSUPPORTED_CONTENT_ENCODING = "UNSUPPORTED_CONTENT_ENCODING"
ARRIVED = "arrived_at"
"""The key, in the request's state, of the event loop's time at its first byte."""

logger = logging.getLogger("graphql_api.client_errors")


def arrived_at(scope: Scope) -> float | None:
    """When the request began, on the event loop's clock; None before ``BodyLimit``."""
    state = scope.get("state")
    return state.get(ARRIVED) if isinstance(state, dict) else None


class _Refused(Exception):
    def __init__(self, status: HTTPStatus, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class BodyLimit:
    """ASGI middleware refusing HTTP request bodies of more than ``max_bytes``, not received
    whole within ``read_seconds``, or compressed."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        read_seconds: float = 10.0,
        streamed: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_seconds = read_seconds
        self.streamed = dict(streamed or {})
        """Paths whose endpoints read their bodies as they arrive (a file's upload), with
        the larger limit each has: only the headers are checked here, against it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived = asyncio.get_running_loop().time()
        scope.setdefault("state", {})[ARRIVED] = arrived
        streamed = self.streamed.get(scope.get("path", ""))
        try:
            self._check_headers(Headers(scope=scope), streamed or self.max_bytes)
            if streamed is not None:
                await self.app(scope, receive, send)
                return
            async with asyncio.timeout_at(arrived + self.read_seconds):
                body = await self._read(receive)
        except _Refused as refused:
            await _refuse(scope, receive, send, refused)
            return
        except TimeoutError:
            refused = _Refused(
                HTTPStatus.REQUEST_TIMEOUT,
                f"The request body did not arrive whole within {self.read_seconds:g} s.",
                BODY_READ_TIMEOUT,
            )
            logger.info("a request body stalled; refused with 408")
            await _refuse(scope, receive, send, refused)
            return
        if body is None:  # the client went away before its body was whole
            record = current_request()
            if record is not None:
                record.outcome = "client_left"
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _check_headers(self, headers: Headers, max_bytes: int) -> None:
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise _Refused(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "Request bodies are not decompressed: send this one without "
                f"Content-Encoding ({encoding[:40]}).",
                UNSUPPORTED_CONTENT_ENCODING,
            )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(max_bytes)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body; None when the client left first."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise _too_large(self.max_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _too_large(max_bytes: int) -> _Refused:
    return _Refused(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"The request body is larger than {max_bytes:,} bytes.",
        BODY_TOO_LARGE,
    )


async def _refuse(scope: Scope, receive: Receive, send: Send, refused: _Refused) -> None:
    error = {"message": refused.message, "extensions": {"code": refused.code}}
    response = Response(
        json.dumps({"errors": [error]}),
        status_code=refused.status,
        media_type="application/json",
        headers={"Connection": "close"},
    )
    with contextlib.suppress(OSError):  # the client may be gone
        await response(scope, receive, send)
