"""Each HTTP request gets an id, echoed as ``X-Request-ID``, and one log line when it ends:
its operation, principal, duration and SQL statements; ``/graphql``'s go to the metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from http import HTTPStatus

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graphql_api.groups.export import LINK_PATH
from graphql_api.kernel.requests import RequestRecord, recording
from graphql_api.web.monitoring.metrics import Metrics

logger = logging.getLogger("graphql_api.requests")

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""A client's ``X-Request-ID`` is kept when it looks like an id; otherwise one is made."""
PROBES = ("/health", "/metrics")
"""Paths polled by machines: their lines are DEBUG, so they do not drown the log."""


class RequestObserver:
    """Outermost ASGI middleware: the request's id, record, log line and metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        record = RequestRecord(given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex)
        status = HTTPStatus.INTERNAL_SERVER_ERROR  # unless the application answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                header = (b"x-request-id", record.request_id.encode())
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        started = time.perf_counter()
        with recording(record):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._ended(scope, record, status, time.perf_counter() - started)

    def _ended(self, scope: Scope, record: RequestRecord, status: int, seconds: float) -> None:
        user = scope.get("user")
        path = _logged(scope["path"])
        outcome = record.outcome or _outcome_of(status)
        fields = {
            "method": scope["method"],
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "operation": record.operation,
            "outcome": outcome if scope["path"] == "/graphql" else None,
            "principal": user.display_name if getattr(user, "is_authenticated", False) else None,
            "statements": record.statements,
            "request_id": record.request_id,
        }
        level = logging.DEBUG if scope["path"].startswith(PROBES) else logging.INFO
        logger.log(
            level,
            "%s %s %s",
            scope["method"],
            path,
            status,
            extra={"fields": {k: v for k, v in fields.items() if v is not None}},
        )
        # GraphiQL's page is no request to count; a refused one is.
        if scope["path"] == "/graphql" and (record.outcome or status >= 400):
            self.metrics.observe(record.operation or "unknown", outcome, seconds)


def _logged(path: str) -> str:
    """The path as logged: a download link's token is as good as a password until used."""
    return LINK_PATH + "…" if path.startswith(LINK_PATH) else path


def _outcome_of(status: int) -> str:
    """The outcome of a request GraphQL did not finish, by its status."""
    if status == HTTPStatus.UNAUTHORIZED:
        return "unauthenticated"
    return "server_error" if status >= 500 else "invalid"
