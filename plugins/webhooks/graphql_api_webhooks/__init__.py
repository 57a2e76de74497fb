"""POST every event as signed JSON to the URLs in ``GRAPHQL_API_WEBHOOK_URLS``.

One POST per event and URL. The body is ``{"id", "type", "occurredAt", "data"}``, ``data``
as docs/plugins.md lists it (a ``members.added`` / ``members.removed`` event names up to
1,000 contacts of one group in ``contactIds``, plugin API 2); ``X-Webhook-Signature`` is
``sha256=<hex HMAC-SHA256 of the raw body with GRAPHQL_API_WEBHOOK_SECRET>`` and
``X-Webhook-Id`` the delivery id, the same on every retry: receivers use it to ignore
repeats. A non-2xx answer or a timeout from any URL fails the attempt, which is retried
like any delivery (to every URL, so receivers see repeats).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import ssl

import certifi
import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from graphql_api.plugin import EVENT_TYPES, CommaSeparated, Event, SkipDelivery, hookimpl

__version__ = "0.1.0"
PLUGIN_NAME = NAME = "webhooks"


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRAPHQL_API_WEBHOOK_")

    urls: CommaSeparated = []
    secret: str = ""
    timeout_seconds: float = 10.0


@hookimpl
def plugin_settings() -> type[BaseSettings]:
    return WebhookSettings


@hookimpl
def event_subscriptions() -> list[str]:
    # portal.* events carry single-use secrets meant for the e-mail plugin alone.
    return [kind for kind in EVENT_TYPES if not kind.startswith("portal.")]


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every delivery: loading the CA bundle for each new client cost
    more than the POST itself, and a bulk change sends hundreds of events."""
    return ssl.create_default_context(cafile=certifi.where())


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@hookimpl
async def deliver(event: Event, delivery_id: int, settings: WebhookSettings) -> None:
    if not settings.urls:
        raise SkipDelivery("no webhook URLs are configured")
    body = json.dumps(
        {
            "id": delivery_id,
            "type": event.type,
            "occurredAt": event.occurred_at.isoformat(),
            "data": dict(event.data),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Signature": signature(body, settings.secret),
        "X-Webhook-Id": str(delivery_id),
    }
    async with httpx.AsyncClient(timeout=settings.timeout_seconds, verify=_tls()) as client:
        for url in settings.urls:
            response = await client.post(url, content=body, headers=headers)
            if not response.is_success:
                raise RuntimeError(f"{url} answered {response.status_code}")
