"""A limit on the size of request bodies, before anything reads them.

A body whose ``Content-Length`` says it is too large is refused at once; one sent in
chunks without it is read up to the limit and refused as soon as it passes it. Either way
the answer is 413 with a GraphQL error whose code is ``BODY_TOO_LARGE``, and nothing
parses the body. A body within the limit reaches the application as it came.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_TOO_LARGE = "BODY_TOO_LARGE"


class BodyLimit:
    """ASGI middleware refusing HTTP request bodies of more than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = {
            "message": f"The request body is larger than {self.max_bytes:,} bytes.",
            "extensions": {"code": BODY_TOO_LARGE},
        }
        response = Response(
            json.dumps({"errors": [error]}),
            status_code=413,
            media_type="application/json",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
