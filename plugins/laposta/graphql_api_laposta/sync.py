"""Keeping a linked group and its Laposta list the same: the domain of the plugin.

The group is the truth for who is on the list; Laposta is the truth for who unsubscribed.
Every push is a *reconcile* of some contacts of one group: what they should be on the list
(active, unsubscribed, or absent) is read from the database when the push runs, not from
the event that asked for it. So deliveries may arrive late, twice or out of order and the
list still ends as the group is. Laposta's calls are made first, the states written after
in one statement, in the caller's transaction: a call that fails rolls the states back and
the delivery (or job step) is tried again, and Laposta's upsert makes the repeat harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import (
    Integer,
    String,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import (
    Contact,
    ErrorCode,
    OptOutSource,
    Problem,
    UserInputError,
    UtcDateTime,
    groups_containing,
    member_ids,
    opted_out,
    record_opt_outs,
    utcnow,
)
from graphql_api_laposta.client import LapostaClient, LapostaError, Subscriber
from graphql_api_laposta.models import MailingListLink, MemberSync, SyncState

T = TypeVar("T")
R = TypeVar("R")
PLUGIN = "laposta"
NOT_CONFIGURED = "LAPOSTA_NOT_CONFIGURED"
NOT_LINKED = "LAPOSTA_NOT_LINKED"
ALREADY_LINKED = "LAPOSTA_ALREADY_LINKED"
LIST_TAKEN = "LAPOSTA_LIST_TAKEN"
LIST_REFUSED = "LAPOSTA_LIST_REFUSED"
ERROR_CODES = {
    NOT_CONFIGURED: "No Laposta API key is configured (GRAPHQL_API_LAPOSTA_API_KEY): the "
    "mailing-list sync is off.",
    NOT_LINKED: "The group is not linked to a Laposta list.",
    ALREADY_LINKED: "The group is linked to a Laposta list already: unlink it first.",
    LIST_TAKEN: "This Laposta list is linked to another group.",
    LIST_REFUSED: "Laposta refused the list (unknown list id, or a key without access).",
}
NAME_FIELDS = frozenset({"email", "firstName", "lastName"})
"""Fields of ``contacts.updated`` that change what the list holds of a contact."""


class LapostaSettings(BaseSettings):
    """``GRAPHQL_API_LAPOSTA_*``; without an API key the plugin does nothing and its
    mutations answer LAPOSTA_NOT_CONFIGURED."""

    model_config = SettingsConfigDict(env_prefix="GRAPHQL_API_LAPOSTA_")

    api_key: str = ""
    base_url: str = "https://api.laposta.nl/v2"
    webhook_secret: str = ""
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    max_wait_seconds: float = 2.0
    """A 429 whose Retry-After is at most this is waited for in place, once."""
    concurrency: int = 8
    """Requests to Laposta at once within one delivery or job step."""
    bulk_threshold: int = 50
    """More contacts than this in one push go through the bulk endpoint."""
    first_name_field: str = "voornaam"
    """The list's custom field for a first name; empty sends none."""
    last_name_field: str = "achternaam"

    @property
    def configured(self) -> bool:
        return bool(self.api_key)


def client_for(settings: LapostaSettings) -> LapostaClient:
    return LapostaClient(
        settings.api_key,
        settings.base_url,
        timeout_seconds=settings.timeout_seconds,
        connect_timeout_seconds=settings.connect_timeout_seconds,
        max_wait_seconds=settings.max_wait_seconds,
    )


def require_configured(settings: LapostaSettings | None) -> LapostaSettings:
    if settings is None or not settings.configured:
        raise UserInputError([Problem((), NOT_CONFIGURED, ERROR_CODES[NOT_CONFIGURED])])
    return settings


async def link_of(session: AsyncSession, group_id: int) -> MailingListLink | None:
    return await session.get(MailingListLink, group_id)


@dataclass
class Outcome:
    """What a reconcile did, for the job's ``changed`` count and the tests."""

    pushed: int = 0
    deleted: int = 0
    unsubscribed: int = 0
    errors: int = 0

    @property
    def changed(self) -> int:
        return self.pushed + self.deleted + self.unsubscribed + self.errors


@dataclass
class _Plan:
    push: dict[int, Subscriber] = field(default_factory=dict)
    delete: dict[int, str] = field(default_factory=dict)
    unsubscribe: dict[int, str] = field(default_factory=dict)
    rows: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    """The new state row of each contact handled; None: no row any more."""


def _fields(settings: LapostaSettings, first: str | None, last: str | None) -> dict[str, str]:
    fields = {}
    if settings.first_name_field:
        fields[settings.first_name_field] = first or ""
    if settings.last_name_field:
        fields[settings.last_name_field] = last or ""
    return fields


def _row(
    state: SyncState, *, member_id: str | None, email: str | None, error: str | None = None
) -> dict[str, Any]:
    return {
        "state": state.value,
        "member_id": member_id,
        "email": email,
        "last_error": error,
        "updated_at": utcnow(),
    }


async def _plan(
    session: AsyncSession,
    settings: LapostaSettings,
    group_id: int,
    contact_ids: Sequence[int],
    refresh: bool,
) -> _Plan:
    """Compare what the contacts are with what the list was last told, in two statements."""
    ids = sorted(set(contact_ids))
    known = {
        row.contact_id: row
        for row in await session.scalars(
            select(MemberSync).where(
                MemberSync.group_id == group_id, MemberSync.contact_id.in_(ids)
            )
        )
    }
    in_group = Contact.id.in_(member_ids(group_id))
    out = Contact.id.in_(opted_out(group_id))
    contacts = {
        row.id: row
        for row in await session.execute(
            select(
                Contact.id,
                Contact.email,
                Contact.first_name,
                Contact.last_name,
                in_group.label("member"),
                out.label("out"),
            ).where(Contact.id.in_(ids))
        )
    }
    plan = _Plan()
    for contact_id in ids:
        row = known.get(contact_id)
        contact = contacts.get(contact_id)
        on_list = row is not None and row.member_id is not None
        if contact is None or not contact.member or not contact.email:
            # Not (or no longer) in the group, or nothing to send: off the list. One who
            # unsubscribed stays on Laposta as unsubscribed, so Laposta keeps the refusal.
            if on_list and row.state != SyncState.UNSUBSCRIBED:
                plan.delete[contact_id] = row.member_id
            plan.rows[contact_id] = None
            continue
        if contact.out:
            if on_list and row.state != SyncState.UNSUBSCRIBED:
                plan.unsubscribe[contact_id] = row.member_id
            member_id = row.member_id if row is not None else None
            email = row.email if row is not None else None
            plan.rows[contact_id] = _row(SyncState.UNSUBSCRIBED, member_id=member_id, email=email)
            continue
        current = (
            row is not None
            and row.state == SyncState.SYNCED
            and row.member_id is not None
            and row.email == contact.email
        )
        if current and not refresh:
            continue
        plan.push[contact_id] = Subscriber(
            email=contact.email,
            custom_fields=_fields(settings, contact.first_name, contact.last_name),
            member_id=row.member_id if row is not None else None,
        )
    return plan


async def reconcile(
    session: AsyncSession,
    client: LapostaClient,
    settings: LapostaSettings,
    link: MailingListLink,
    contact_ids: Sequence[int],
    *,
    refresh: bool = False,
) -> Outcome:
    """Make the list hold these contacts of the linked group as they are now. ``refresh``
    sends contacts already synced again (their address or names changed)."""
    plan = await _plan(session, settings, link.group_id, contact_ids, refresh)
    outcome = Outcome()
    list_id = link.list_id
    limit = settings.concurrency
    if len(plan.push) > settings.bulk_threshold:
        await _push_bulk(client, list_id, plan)
    else:
        pushed = await each(
            limit, list(plan.push.values()), lambda one: _push_one(client, list_id, one)
        )
        plan.rows.update(zip(plan.push, pushed, strict=True))
    for row in (r for c, r in plan.rows.items() if c in plan.push):
        if row is not None and row["state"] == SyncState.ERROR:
            outcome.errors += 1
        else:
            outcome.pushed += 1
    await each(limit, list(plan.delete.values()), lambda m: client.delete_member(list_id, m))
    outcome.deleted = len(plan.delete)
    await each(limit, list(plan.unsubscribe.values()), lambda m: _unsubscribe(client, list_id, m))
    outcome.unsubscribed = len(plan.unsubscribe)
    await store(session, link.group_id, plan.rows)
    return outcome


async def each(limit: int, items: Sequence[T], call: Callable[[T], Awaitable[R]]) -> list[R]:
    """``call`` for each item, at most ``limit`` at once (a delivery of 1,000 exits is
    1,000 DELETEs: one by one they would outlast the outbox's handler timeout). The first
    failure cancels the rest and is raised as itself."""
    gate = asyncio.Semaphore(max(1, limit))

    async def one(item: T) -> R:
        async with gate:
            return await call(item)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(item)) for item in items]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def _unsubscribe(client: LapostaClient, list_id: str, member_id: str) -> None:
    try:
        await client.update_member(list_id, member_id, state="unsubscribed")
    except LapostaError as error:
        if error.status != 404:
            raise


async def _push_one(client: LapostaClient, list_id: str, subscriber: Subscriber) -> dict[str, Any]:
    """One contact: an update of the member we know (its address may have changed), or a
    create with upsert. Laposta refusing the address is the member's ERROR, not a fault."""
    try:
        if subscriber.member_id is not None:
            try:
                member = await client.update_member(
                    list_id,
                    subscriber.member_id,
                    email=subscriber.email,
                    custom_fields=subscriber.custom_fields,
                    state="active",
                )
            except LapostaError as error:
                if error.status != 404:
                    raise
                member = await client.create_member(list_id, subscriber)
        else:
            member = await client.create_member(list_id, subscriber)
    except LapostaError as error:
        if error.already_exists:
            member_id = error.member_id
            if member_id is None:
                found = await client.get_member(list_id, subscriber.email)
                member_id = found["member_id"] if found else None
            if member_id is not None:
                return _row(SyncState.SYNCED, member_id=member_id, email=subscriber.email)
        if error.status == 400 and error.parameter in ("email", None):
            return _row(
                SyncState.ERROR,
                member_id=subscriber.member_id,
                email=subscriber.email,
                error=error.short(),
            )
        raise
    return _row(SyncState.SYNCED, member_id=member["member_id"], email=subscriber.email)


async def _push_bulk(client: LapostaClient, list_id: str, plan: _Plan) -> None:
    """Many contacts in one bulk request, then the list read once for their member ids."""
    report = await client.bulk(list_id, list(plan.push.values()), mode="add_and_edit")
    refused: dict[str, str] = {}
    for error in report.get("errors") or []:
        given = error.get("member") or {}
        email = str(given.get("email") or "").lower()
        refused[email] = f"{error.get('message', 'refused')} (code {error.get('code')})"
    by_email = {m["email"].lower(): m for m in await client.members(list_id)}
    for contact_id, subscriber in plan.push.items():
        email = subscriber.email.lower()
        member = by_email.get(email)
        if email in refused or member is None:
            message = refused.get(email, "Not on the list after Laposta's bulk request.")
            plan.rows[contact_id] = _row(
                SyncState.ERROR,
                member_id=subscriber.member_id,
                email=subscriber.email,
                error=message,
            )
        else:
            plan.rows[contact_id] = _row(
                SyncState.SYNCED, member_id=member["member_id"], email=subscriber.email
            )


async def store(
    session: AsyncSession, group_id: int, rows: Mapping[int, Mapping[str, Any] | None]
) -> None:
    """Replace the state rows of these contacts in two statements (None: no row)."""
    if not rows:
        return
    await session.execute(
        delete(MemberSync).where(
            MemberSync.group_id == group_id, MemberSync.contact_id.in_(list(rows))
        )
    )
    values = [
        {"group_id": group_id, "contact_id": contact_id, **row}
        for contact_id, row in rows.items()
        if row is not None
    ]
    if values:
        await session.execute(insert(MemberSync.__table__), values)


async def mark_pending(session: AsyncSession, group_id: int) -> None:
    """Every member of a newly linked group, PENDING until the resync pushes it: one
    INSERT ... SELECT."""
    await session.execute(
        insert(MemberSync.__table__).from_select(
            ["group_id", "contact_id", "state", "updated_at"],
            select(
                literal(group_id, Integer),
                Contact.id,
                literal(SyncState.PENDING.value, String(20)),
                literal(utcnow(), UtcDateTime()),
            ).where(Contact.id.in_(member_ids(group_id))),
        )
    )


async def linked_groups_of(
    session: AsyncSession, contact_ids: Iterable[int]
) -> list[MailingListLink]:
    """The linked groups any of these contacts is in, or has a state row in: one query
    for the links and one for the memberships, whatever the number of contacts."""
    ids = list(contact_ids)
    links = list(await session.scalars(select(MailingListLink).order_by(MailingListLink.group_id)))
    if not links or not ids:
        return []
    linked = [link.group_id for link in links]
    held = {group for group, _ in await groups_containing(session, linked, ids)}
    synced = set(
        await session.scalars(
            select(MemberSync.group_id).where(MemberSync.contact_id.in_(ids)).distinct()
        )
    )
    return [link for link in links if link.group_id in held | synced]


async def unsubscribed(
    session: AsyncSession,
    link: MailingListLink,
    members: Sequence[Mapping[str, Any]],
) -> int:
    """Members Laposta says unsubscribed: opt their contacts out of the group's mail
    (source MAILING_LIST) and mark them UNSUBSCRIBED; matched by member id, then address,
    among the group's members. How many contacts were newly opted out."""
    if not members:
        return 0
    contact_ids = await _contacts_of(session, link.group_id, members)
    newly = len(
        await record_opt_outs(session, list(contact_ids), link.group_id, OptOutSource.MAILING_LIST)
    )
    if contact_ids:
        known = set(
            await session.scalars(
                select(MemberSync.contact_id).where(
                    MemberSync.group_id == link.group_id,
                    MemberSync.contact_id.in_(list(contact_ids)),
                )
            )
        )
        await session.execute(
            update(MemberSync)
            .where(MemberSync.group_id == link.group_id, MemberSync.contact_id.in_(known))
            .values(state=SyncState.UNSUBSCRIBED.value, last_error=None, updated_at=utcnow())
        )
        missing = {c: m for c, m in contact_ids.items() if c not in known}
        if missing:
            await session.execute(
                insert(MemberSync.__table__),
                [
                    {
                        "group_id": link.group_id,
                        "contact_id": c,
                        **_row(SyncState.UNSUBSCRIBED, member_id=m, email=None),
                    }
                    for c, m in missing.items()
                ],
            )
    return newly


async def _contacts_of(
    session: AsyncSession, group_id: int, members: Sequence[Mapping[str, Any]]
) -> dict[int, str]:
    """The group's contacts these Laposta members are: by member id, else by address."""
    by_id = {str(m.get("member_id")): m for m in members if m.get("member_id")}
    found: dict[int, str] = {}
    if by_id:
        rows = await session.execute(
            select(MemberSync.contact_id, MemberSync.member_id).where(
                MemberSync.group_id == group_id, MemberSync.member_id.in_(list(by_id))
            )
        )
        found.update({contact_id: member_id for contact_id, member_id in rows})
    matched = set(found.values())
    by_email = {
        str(m.get("email", "")).lower(): str(m.get("member_id"))
        for m in members
        if str(m.get("member_id")) not in matched and m.get("email")
    }
    if by_email:
        rows = await session.execute(
            select(Contact.id, Contact.email).where(
                func.lower(Contact.email).in_(list(by_email)),
                Contact.id.in_(member_ids(group_id)),
            )
        )
        for contact_id, email in rows:
            found.setdefault(contact_id, by_email[email.lower()])
    return found


def not_linked(field: str = "group_id") -> UserInputError:
    return UserInputError.single([field], NOT_LINKED, ERROR_CODES[NOT_LINKED])


def no_group() -> UserInputError:
    return UserInputError.single(["group_id"], ErrorCode.NOT_FOUND, "No group with this id.")


SUBSCRIPTIONS = [
    "members.added",
    "members.removed",
    "contacts.updated",
    "contact.erased",
    "mail.opted_out",
    "mail.opt_out_withdrawn",
]


async def handle_event(
    session: AsyncSession, settings: LapostaSettings, kind: str, data: Mapping[str, Any]
) -> Outcome | None:
    """Push what one outbox event changed to the lists of the groups it concerns; None
    when it concerns no linked group. Laposta's passing faults raise (the outbox retries
    the delivery with backoff)."""
    if kind in ("members.added", "members.removed"):
        links = [await link_of(session, int(data["group"]["id"]))]
        contact_ids, refresh = [int(c) for c in data["contactIds"]], False
    elif kind == "contacts.updated":
        if not NAME_FIELDS & set(data.get("fields") or ()):
            return None
        contact_ids, refresh = [int(c) for c in data["contactIds"]], True
        links = await linked_groups_of(session, contact_ids)
    elif kind == "contact.erased":
        contact_ids, refresh = [int(data["contactId"])], False
        links = await linked_groups_of(session, contact_ids)
    elif kind in ("mail.opted_out", "mail.opt_out_withdrawn"):
        if kind == "mail.opted_out" and data.get("source") == OptOutSource.MAILING_LIST.value:
            return None  # it came from the list: the list knows
        links = [await link_of(session, int(data["groupId"]))]
        contact_ids, refresh = [int(c) for c in data["contactIds"]], False
    else:
        return None
    linked = [link for link in links if link is not None]
    if not linked:
        return None
    total = Outcome()
    async with client_for(settings) as client:
        for link in linked:
            done = await reconcile(session, client, settings, link, contact_ids, refresh=refresh)
            total.pushed += done.pushed
            total.deleted += done.deleted
            total.unsubscribed += done.unsubscribed
            total.errors += done.errors
    return total
