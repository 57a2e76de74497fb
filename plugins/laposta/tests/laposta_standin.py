"""A STAND-IN for Laposta's API, for the tests: not Laposta, and no copy of its code.

A real HTTP server on loopback (Starlette under uvicorn, in a thread) answering the subset of
Laposta's public API (https://api.laposta.nl/doc/) the plugin calls, written from that
documentation:

- ``POST /v2/member`` (form fields ``list_id``, ``ip``, ``email``, ``custom_fields[...]``,
  ``options[upsert|suppress_email_notification|ignore_doubleoptin]``),
- ``GET /v2/member?list_id=...[&state=...]`` (``{"data": [{"member": {...}}, ...]}``),
- ``GET``, ``POST`` (update) and ``DELETE /v2/member/{member_id or e-mail}?list_id=...``,
- ``POST /v2/list/{list_id}/members`` (JSON ``{"mode", "members"}``, the bulk endpoint) and
  its report ``{"report": {"provided_count", "errors_count", "skipped_count",
  "edited_count", "added_count"}, "errors": [...]}``;

with HTTP Basic authentication (the API key as user name; 401 otherwise) and Laposta's error
body ``{"error": {"type", "message", "code", "parameter"}}`` (codes 201 empty, 203 unknown,
204 already exists, 208 not an e-mail address). Its members have ``member_id``,
``list_id``, ``email``, ``state`` (``active``, ``unsubscribed``), ``signup_date``,
``modified``, ``ip``, ``custom_fields``.

Switches for the tests: ``rate_limit(n)`` (429 for the next n calls), ``fail(n)`` (a 503
for the next n calls, then answers again), ``refuse(address)`` (an address it refuses as
invalid), ``conflict(address)`` (its next create answers 204 "already exists"),
``add(list_id, email, state)`` (a member put on the list directly, as Laposta's own screens
would), and ``webhook_body(...)`` / ``post_webhook(...)`` (Laposta's webhook POST to the
service). Not covered: lists, fields, segments, campaigns, webhooks' registration, double
opt-in, rate limits as Laposta counts them.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "standin-api-key"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _error(
    status: int,
    message: str,
    *,
    code: int | None = None,
    parameter: str | None = None,
    type: str = "invalid_input",
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type, "message": message}
    if code is not None:
        body["code"] = code
    if parameter is not None:
        body["parameter"] = parameter
    return JSONResponse({"error": body | extra}, status_code=status)


async def _form(request: Request) -> dict[str, Any]:
    """The form-encoded body, ``custom_fields[voornaam]=Anna`` back into
    ``{"custom_fields": {"voornaam": "Anna"}}``."""
    values: dict[str, Any] = {}
    for key, value in parse_qsl((await request.body()).decode(), keep_blank_values=True):
        if "[" in key and key.endswith("]"):
            outer, inner = key[:-1].split("[", 1)
            values.setdefault(outer, {})[inner] = value
        else:
            values[key] = value
    return values


class LapostaStandIn:
    """The stand-in's state (lists of members) and its switches; ``url`` once started."""

    def __init__(self) -> None:
        self.reset()
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def reset(self) -> None:
        """No lists, no calls, no faults: as new (the server keeps running)."""
        self.lists: dict[str, dict[str, dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
        self.rate_limited = 0
        self.retry_after = 0
        self.failing = 0
        self.refused: set[str] = set()
        self.conflicts: set[str] = set()

    # -- switches ---------------------------------------------------------------------

    def new_list(self) -> str:
        list_id = secrets.token_urlsafe(8)[:10]
        self.lists[list_id] = {}
        return list_id

    def rate_limit(self, calls: int, retry_after: int = 0) -> None:
        """Answer 429 (with ``Retry-After``) to the next ``calls`` calls."""
        self.rate_limited, self.retry_after = calls, retry_after

    def fail(self, calls: int) -> None:
        """Answer 503 to the next ``calls`` calls; then answer as before."""
        self.failing = calls

    def refuse(self, email: str) -> None:
        """Refuse this address as invalid (400, code 208, parameter email)."""
        self.refused.add(email.lower())

    def conflict(self, email: str) -> None:
        """The next create of this address answers 204 "already exists", upsert or not."""
        self.conflicts.add(email.lower())

    def add(self, list_id: str, email: str, state: str = "active", **fields: str) -> str:
        """A member put on the list directly (Laposta's own screens, a signup form)."""
        member = self._new_member(list_id, email, fields)
        member["state"] = state
        return member["member_id"]

    def active(self, list_id: str) -> dict[str, dict[str, Any]]:
        """The active members of a list, by address."""
        return {m["email"]: m for m in self.lists[list_id].values() if m["state"] == "active"}

    def by_email(self, list_id: str, email: str) -> dict[str, Any] | None:
        return next(
            (m for m in self.lists[list_id].values() if m["email"].lower() == email.lower()),
            None,
        )

    def webhook_body(
        self, list_id: str, member_id: str, event: str = "deactivated", action: str = "unsubscribed"
    ) -> dict[str, Any]:
        """Laposta's webhook request body for one event of one member."""
        member = dict(self.lists[list_id][member_id])
        if event == "deactivated":
            member["state"] = "unsubscribed"
        return {
            "data": [
                {
                    "type": "member",
                    "event": event,
                    "data": member,
                    "info": {"source": "external", "action": action, "date_event": _now()},
                    "date_fired": _now(),
                }
            ]
        }

    async def post_webhook(
        self, client: httpx.AsyncClient, url: str, body: dict[str, Any]
    ) -> httpx.Response:
        """POST a webhook body as Laposta does: JSON, no signature of its own."""
        return await client.post(url, json=body)

    # -- the server -------------------------------------------------------------------

    def start(self) -> None:
        app = Starlette(
            routes=[
                Route("/v2/member", self._members, methods=["GET", "POST"]),
                Route("/v2/member/{member}", self._member, methods=["GET", "POST", "DELETE"]),
                Route("/v2/list/{list_id}/members", self._bulk, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the Laposta stand-in did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v2"

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(10)

    # -- handlers ---------------------------------------------------------------------

    def _gate(self, request: Request) -> JSONResponse | None:
        """Authentication first, then the injected faults; records every call."""
        self.calls.append((request.method, request.url.path))
        header = request.headers.get("Authorization", "")
        try:
            user = base64.b64decode(header.removeprefix("Basic ")).decode().split(":")[0]
        except (ValueError, UnicodeDecodeError):
            user = ""
        if not header.startswith("Basic ") or user != API_KEY:
            return _error(401, "Invalid API key", type="invalid_request")
        with self._lock:
            if self.rate_limited > 0:
                self.rate_limited -= 1
                response = _error(429, "Too many requests", type="request_limit")
                response.headers["Retry-After"] = str(self.retry_after)
                return response
            if self.failing > 0:
                self.failing -= 1
                return _error(503, "Service unavailable", type="server")
        return None

    def _list(self, list_id: str | None) -> dict[str, dict[str, Any]] | JSONResponse:
        if not list_id:
            return _error(400, "List id is empty", code=201, parameter="list_id")
        if list_id not in self.lists:
            return _error(400, "Unknown list", code=203, parameter="list_id")
        return self.lists[list_id]

    def _new_member(self, list_id: str, email: str, fields: dict[str, Any]) -> dict[str, Any]:
        member_id = secrets.token_urlsafe(8)[:10]
        member = {
            "member_id": member_id,
            "list_id": list_id,
            "email": email,
            "state": "active",
            "signup_date": _now(),
            "modified": None,
            "confirmed": None,
            "ip": "127.0.0.1",
            "source_url": "",
            "custom_fields": dict(fields),
        }
        self.lists[list_id][member_id] = member
        return member

    def _address_problem(self, email: str | None) -> JSONResponse | None:
        if not email:
            return _error(400, "Email is empty", code=201, parameter="email")
        if "@" not in email or email.lower() in self.refused:
            return _error(400, "Email address is invalid", code=208, parameter="email")
        return None

    def _find(self, members: dict[str, dict[str, Any]], key: str) -> dict[str, Any] | None:
        if key in members:
            return members[key]
        return next((m for m in members.values() if m["email"].lower() == key.lower()), None)

    async def _members(self, request: Request) -> JSONResponse:
        if (refused := self._gate(request)) is not None:
            return refused
        if request.method == "GET":
            members = self._list(request.query_params.get("list_id"))
            if isinstance(members, JSONResponse):
                return members
            state = request.query_params.get("state")
            data = [{"member": m} for m in members.values() if state in (None, m["state"])]
            return JSONResponse({"data": data})
        values = await _form(request)
        members = self._list(values.get("list_id"))
        if isinstance(members, JSONResponse):
            return members
        email = values.get("email")
        if (problem := self._address_problem(email)) is not None:
            return problem
        assert email is not None
        existing = self._find(members, email)
        options = values.get("options", {})
        if email.lower() in self.conflicts:
            self.conflicts.discard(email.lower())
            if existing is None:
                existing = self._new_member(values["list_id"], email, {})
            return _error(400, "Email address exists", code=204, parameter="email")
        if existing is not None:
            if options.get("upsert") != "true":
                return _error(400, "Email address exists", code=204, parameter="email")
            existing["custom_fields"].update(values.get("custom_fields", {}))
            existing["state"] = "active"
            existing["modified"] = _now()
            return JSONResponse({"member": existing})
        member = self._new_member(values["list_id"], email, values.get("custom_fields", {}))
        return JSONResponse({"member": member}, status_code=201)

    async def _member(self, request: Request) -> JSONResponse:
        if (refused := self._gate(request)) is not None:
            return refused
        if request.method == "POST":
            values = await _form(request)
            list_id = values.get("list_id")
        else:
            values = {}
            list_id = request.query_params.get("list_id")
        members = self._list(list_id)
        if isinstance(members, JSONResponse):
            return members
        member = self._find(members, request.path_params["member"])
        if member is None:
            return _error(
                404, "Member not found", type="not_found", code=203, parameter="member_id"
            )
        if request.method == "GET":
            return JSONResponse({"member": member})
        if request.method == "DELETE":
            del members[member["member_id"]]
            return JSONResponse({"member": member | {"state": "deleted"}})
        if "email" in values:
            if (problem := self._address_problem(values["email"])) is not None:
                return problem
            other = self._find(members, values["email"])
            if other is not None and other is not member:
                return _error(400, "Email address exists", code=204, parameter="email")
            member["email"] = values["email"]
        if values.get("state") in ("active", "unsubscribed"):
            member["state"] = values["state"]
        member["custom_fields"].update(values.get("custom_fields", {}))
        member["modified"] = _now()
        return JSONResponse({"member": member})

    async def _bulk(self, request: Request) -> JSONResponse:
        if (refused := self._gate(request)) is not None:
            return refused
        members = self._list(request.path_params["list_id"])
        if isinstance(members, JSONResponse):
            return members
        body = await request.json()
        mode = body.get("mode")
        if mode not in ("add", "add_and_edit", "edit"):
            return _error(400, "Mode is invalid", code=202, parameter="mode")
        report = {
            "provided_count": 0,
            "errors_count": 0,
            "skipped_count": 0,
            "edited_count": 0,
            "added_count": 0,
        }
        errors: list[dict[str, Any]] = []
        for given in body.get("members", []):
            report["provided_count"] += 1
            email = given.get("email")
            problem = self._address_problem(email)
            if problem is not None:
                report["errors_count"] += 1
                errors.append(
                    {
                        "type": "invalid_input",
                        "message": "Email address is invalid",
                        "code": 208,
                        "parameter": "email",
                        "member": given,
                    }
                )
                continue
            key = given.get("member_id") or email
            existing = self._find(members, key)
            if existing is None and mode == "edit":
                report["skipped_count"] += 1
                continue
            if existing is not None and mode == "add":
                report["skipped_count"] += 1
                continue
            if existing is None:
                list_id = request.path_params["list_id"]
                self._new_member(list_id, email, given.get("custom_fields", {}))
                report["added_count"] += 1
            else:
                existing["email"] = email
                existing["custom_fields"].update(given.get("custom_fields", {}))
                existing["modified"] = _now()
                report["edited_count"] += 1
        await asyncio.sleep(0)
        return JSONResponse({"report": report, "errors": errors})


def started() -> Iterator[LapostaStandIn]:
    """A started stand-in, stopped afterwards (for a fixture)."""
    standin = LapostaStandIn()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()
