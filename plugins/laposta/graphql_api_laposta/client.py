"""An HTTP client for the part of Laposta's API (https://api.laposta.nl/doc/) this plugin uses.

Laposta answers JSON, takes HTTP Basic authentication with the account's API key as user
name and no password, single members as form fields (``custom_fields[name]=...``) and the
bulk endpoint as JSON. An error answer is ``{"error": {"type", "message", "code",
"parameter"}}``; code 204 ("already exists") names the existing member too.

What the plugin must tell apart, and this module tells it: a passing fault (429, 5xx, a
timeout, a refused connection) raises ``LapostaUnavailable`` so the caller's delivery or job
is tried again later; an answer about the request (400, 401, 404) raises ``LapostaError``
with Laposta's code and parameter, for the caller to record against the member.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import certifi
import httpx

ALREADY_EXISTS = 204
"""Laposta's error code for a parameter (the e-mail address) that already exists."""
INVALID_EMAIL_CODES = frozenset({201, 202, 208})
"""Error codes about the e-mail parameter that mean Laposta refuses this address."""


class LapostaError(Exception):
    """Laposta refused a request (4xx but 429): its error body, as given."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: int | None = None,
        parameter: str | None = None,
        member_id: str | None = None,
    ) -> None:
        super().__init__(f"Laposta answered {status}: {message}")
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.parameter = parameter
        self.member_id = member_id

    @property
    def already_exists(self) -> bool:
        return self.code == ALREADY_EXISTS

    @property
    def refused_address(self) -> bool:
        """The member's address itself is what Laposta refuses (invalid, empty)."""
        return (
            self.status == 400
            and self.parameter == "email"
            and (self.code in INVALID_EMAIL_CODES or self.code == 999)
        )

    def short(self) -> str:
        """The error in one line, to keep as a member's last error."""
        detail = f" (code {self.code}, {self.parameter})" if self.code else ""
        return f"{self.message}{detail}"[:500]


class LapostaUnavailable(Exception):
    """A passing fault: rate limited, a server error, or no answer. Try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Subscriber:
    """What the plugin sends for one contact."""

    email: str
    custom_fields: Mapping[str, str]
    member_id: str | None = None


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle costs more than a request."""
    return ssl.create_default_context(cafile=certifi.where())


def _form(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Laposta's form fields: nested mappings as ``name[key]``, booleans as true/false."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}[{key}]" if prefix else key
        if isinstance(value, Mapping):
            flat.update(_form(value, name))
        elif isinstance(value, bool):
            flat[name] = "true" if value else "false"
        elif value is not None:
            flat[name] = str(value)
    return flat


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class LapostaClient:
    """One connection pool to Laposta for a delivery or a job step; use ``async with``."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        timeout_seconds: float = 10.0,
        connect_timeout_seconds: float = 5.0,
        max_wait_seconds: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.max_wait_seconds = max_wait_seconds
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            auth=(api_key, ""),
            timeout=httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds),
            verify=_tls(),
            transport=transport,
            headers={"User-Agent": "graphql-api-laposta/0.1"},
        )

    async def __aenter__(self) -> LapostaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request. A 429 whose Retry-After is short is waited for once here; a longer
        one, or a second, raises ``LapostaUnavailable`` for the outbox's backoff."""
        for attempt in (1, 2):
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                raise LapostaUnavailable(f"Laposta did not answer: {error!r}") from error
            if response.status_code == 429 or response.status_code >= 500:
                wait = _retry_after(response)
                if (
                    attempt == 1
                    and response.status_code == 429
                    and wait is not None
                    and wait <= self.max_wait_seconds
                ):
                    await asyncio.sleep(wait)
                    continue
                raise LapostaUnavailable(
                    f"Laposta answered {response.status_code} to {method} {path}", wait
                )
            try:
                body = response.json()
            except ValueError:
                body = None
            if response.is_success:
                return body
            error = (body or {}).get("error") if isinstance(body, dict) else None
            error = error if isinstance(error, dict) else {}
            raise LapostaError(
                response.status_code,
                str(error.get("message") or response.reason_phrase),
                type=error.get("type"),
                code=_int(error.get("code")),
                parameter=error.get("parameter"),
                member_id=error.get("id") or error.get("member_id"),
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def create_member(self, list_id: str, subscriber: Subscriber) -> dict[str, Any]:
        """POST /v2/member with upsert: adds the address, or updates the member who has it.
        No confirmation mail and no double opt-in: the cooperative's group is the consent."""
        data = {
            "list_id": list_id,
            "ip": "127.0.0.1",
            "email": subscriber.email,
            "custom_fields": dict(subscriber.custom_fields),
            "options": {
                "upsert": True,
                "suppress_email_notification": True,
                "ignore_doubleoptin": True,
            },
        }
        body = await self._call("POST", "member", data=_form(data))
        return body["member"]

    async def update_member(
        self,
        list_id: str,
        member_id: str,
        *,
        email: str | None = None,
        custom_fields: Mapping[str, str] | None = None,
        state: str | None = None,
    ) -> dict[str, Any]:
        """POST /v2/member/{member_id}: a new address, fields, or state (``unsubscribed``)."""
        data: dict[str, Any] = {"list_id": list_id, "email": email, "state": state}
        if custom_fields:
            data["custom_fields"] = dict(custom_fields)
        body = await self._call("POST", f"member/{_segment(member_id)}", data=_form(data))
        return body["member"]

    async def delete_member(self, list_id: str, member_id: str) -> None:
        """DELETE /v2/member/{member_id}; one Laposta no longer has is gone already."""
        try:
            await self._call("DELETE", f"member/{_segment(member_id)}", params={"list_id": list_id})
        except LapostaError as error:
            if error.status != 404:
                raise

    async def get_member(self, list_id: str, member_id_or_email: str) -> dict[str, Any] | None:
        """GET /v2/member/{member_id or e-mail address}; None when the list has none."""
        try:
            body = await self._call(
                "GET", f"member/{_segment(member_id_or_email)}", params={"list_id": list_id}
            )
        except LapostaError as error:
            if error.status == 404:
                return None
            raise
        return body["member"]

    async def members(self, list_id: str, state: str | None = None) -> list[dict[str, Any]]:
        """GET /v2/member?list_id=...&state=...: every member of the list (of that state)."""
        params = {"list_id": list_id} | ({"state": state} if state else {})
        body = await self._call("GET", "member", params=params)
        return [entry["member"] for entry in body.get("data", [])]

    async def bulk(
        self, list_id: str, subscribers: Sequence[Subscriber], mode: str = "add_and_edit"
    ) -> dict[str, Any]:
        """POST /v2/list/{list_id}/members (JSON): many members in one request. A member
        with a ``member_id`` is edited by it (its address may change). The answer is the
        report ``{"report": {...counts}, "errors": [...], "members": [...]}``."""
        members = []
        for subscriber in subscribers:
            member: dict[str, Any] = {
                "email": subscriber.email,
                "custom_fields": dict(subscriber.custom_fields),
            }
            if subscriber.member_id:
                member["member_id"] = subscriber.member_id
            members.append(member)
        return await self._call(
            "POST", f"list/{_segment(list_id)}/members", json={"mode": mode, "members": members}
        )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _segment(value: str) -> str:
    """A path segment, escaped (an e-mail address may stand for a member id)."""
    return quote(value, safe="@")
