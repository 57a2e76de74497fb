"""Unsubscribing from a group's mail with the link in each group mail (RFC 8058).

Every group mail carries ``List-Unsubscribe: <https://.../plugins/email_notifications/
unsubscribe?t=TOKEN>`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. The
token names the mail and the contact and is signed with HMAC-SHA256 under a random
secret kept with the mail's row, so it needs no setting and cannot be made for another
contact or mail. A GET shows a page with a button (a link scanner that follows the link
unsubscribes nobody); a POST (the mail program's one-click, or the button) records the
opt-out. A token that does not verify is answered 400 and nothing is written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from graphql_api.plugin import OptOutSource, plugin_transaction, record_opt_out
from graphql_api_email_notifications.models import GroupMail, GroupMailRecipient

ROUTE = "/unsubscribe"
PATH = f"/plugins/email_notifications{ROUTE}"
"""Where the route answers: the core mounts a plugin's routes under its name."""
BAD_LINK = "This unsubscribe link is not valid. Nothing was changed."


def token(secret: str, mail_id: int, contact_id: int) -> str:
    """``M.C.signature``: the mail, the contact, and their HMAC under the mail's secret."""
    return f"{mail_id}.{contact_id}.{_signature(secret, mail_id, contact_id)}"


def _signature(secret: str, mail_id: int, contact_id: int) -> str:
    digest = hmac.new(
        bytes.fromhex(secret), f"{mail_id}.{contact_id}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _parsed(value: str) -> tuple[int, int, str] | None:
    """``(mail id, contact id, signature)`` of a token that has the form, else None."""
    parts = value.split(".")
    if len(value) > 200 or len(parts) != 3 or not all(p.isdigit() for p in parts[:2]):
        return None
    mail_id, contact_id = int(parts[0]), int(parts[1])
    if mail_id > 2**31 or contact_id > 2**31:
        return None
    return mail_id, contact_id, parts[2]


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=nl><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>",
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def unsubscribe(request: Request) -> Response:
    """GET: the page asking to confirm; POST: the opt-out. 400 for a bad token."""
    parsed = _parsed(request.query_params.get("t", ""))
    if parsed is None:
        return PlainTextResponse(BAD_LINK, status_code=400)
    mail_id, contact_id, signature = parsed
    # Only a POST writes: a GET (a person, a link scanner) leaves SQLite's write lock free.
    async with plugin_transaction(request, writing=request.method == "POST") as session:
        mail = await session.get(GroupMail, mail_id)
        if mail is None or not hmac.compare_digest(
            signature.encode(), _signature(mail.secret, mail_id, contact_id).encode()
        ):
            return PlainTextResponse(BAD_LINK, status_code=400)
        recipient = await session.scalar(
            select(GroupMailRecipient.contact_id).where(
                GroupMailRecipient.group_mail_id == mail_id,
                GroupMailRecipient.contact_id == contact_id,
            )
        )
        if recipient is None or mail.group_id is None:
            return PlainTextResponse(
                "This unsubscribe link no longer works: its contact or group was deleted.",
                status_code=400,
            )
        group = html.escape(mail.group_name)
        if request.method != "POST":  # GET, HEAD: a person, a scanner or a preview
            return _page(
                "Afmelden",
                f"<p>Wilt u geen e-mail meer ontvangen van de groep <b>{group}</b>?</p>"
                f'<form method=post action="?t={html.escape(request.query_params["t"])}">'
                "<input type=hidden name=List-Unsubscribe value=One-Click>"
                "<button type=submit>Afmelden</button></form>",
            )
        await record_opt_out(session, contact_id, mail.group_id, OptOutSource.UNSUBSCRIBE_LINK)
    return _page("Afgemeld", f"<p>U ontvangt geen e-mail meer van de groep <b>{group}</b>.</p>")


ROUTES = [Route(ROUTE, unsubscribe, methods=["GET", "POST"])]
