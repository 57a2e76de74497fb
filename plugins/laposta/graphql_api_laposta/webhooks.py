"""Laposta's webhooks, answered at ``/plugins/laposta/webhook?secret=...``.

Laposta signs nothing it posts, so the URL registered in Laposta carries a secret of ours
(``GRAPHQL_API_LAPOSTA_WEBHOOK_SECRET``), compared in constant time: a request without it
is answered 401 and nothing is written. The body is Laposta's ``{"data": [{"type":
"member", "event", "data": {member}, "info": {"action", ...}, "date_fired"}, ...]}``:
``deactivated`` events (the member unsubscribed, bounced hard or was deleted) are acted
on; ``subscribed`` and ``modified`` are acknowledged and left alone.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graphql_api.plugin import plugin_transaction, utcnow
from graphql_api_laposta.models import MailingListLink, MemberSync, SyncState
from graphql_api_laposta.sync import LapostaSettings, unsubscribed

logger = logging.getLogger("graphql_api_laposta")

OPTED_OUT_ACTIONS = frozenset({"unsubscribed", "hardbounce"})
"""``deactivated`` actions that opt the contact out of the group's mail."""


def _authorised(request: Request, settings: LapostaSettings | None) -> bool:
    if settings is None or not settings.webhook_secret:
        return False
    given = request.query_params.get("secret", "")
    return hmac.compare_digest(given.encode(), settings.webhook_secret.encode())


def _events(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError("no data list")
    events = [e for e in body["data"] if isinstance(e, dict)]
    for event in events:
        if not isinstance(event.get("data"), dict):
            raise ValueError("an event without its member")
    return events


def routes(settings: LapostaSettings | None) -> list[Route]:
    async def webhook(request: Request) -> Response:
        if not _authorised(request, settings):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        try:
            events = _events(json.loads(await request.body()))
        except ValueError:
            return JSONResponse({"error": "not a Laposta webhook body"}, status_code=400)
        handled = 0
        async with plugin_transaction(request) as session:
            for event in events:
                if event.get("type") != "member" or event.get("event") != "deactivated":
                    continue
                member = event["data"]
                link = await session.scalar(
                    select(MailingListLink).where(
                        MailingListLink.list_id == str(member.get("list_id", ""))
                    )
                )
                if link is None:
                    continue
                action = (event.get("info") or {}).get("action")
                if action in OPTED_OUT_ACTIONS or action is None:
                    handled += await unsubscribed(session, link, [member])
                elif action == "deleted":
                    # Deleted on Laposta's side: no refusal to keep; the next resync adds
                    # the contact again while they are in the group.
                    forgotten = await session.scalars(
                        select(MemberSync).where(
                            MemberSync.group_id == link.group_id,
                            MemberSync.member_id == str(member.get("member_id")),
                        )
                    )
                    for row in forgotten:
                        row.member_id, row.state = None, SyncState.PENDING.value
                        row.updated_at = utcnow()
                        handled += 1
        return JSONResponse({"handled": handled})

    return [Route("/webhook", webhook, methods=["POST"])]
