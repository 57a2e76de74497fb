"""The plugin's jobs: a full resync of a group with its list, and reading unsubscribes back.

Both read Laposta in their ``prepare`` (once) and work in chunks, each one transaction: a
worker that dies resumes after the last committed chunk, and a Laposta fault (429, 5xx)
fails the step, which the runner tries again later with backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import (
    Contact,
    Job,
    JobItem,
    JobKind,
    Principal,
    Problem,
    ScheduledJob,
    UserInputError,
    utcnow,
)
from graphql_api_laposta.client import LapostaClient, LapostaError
from graphql_api_laposta.models import MailingListLink, MemberSync, SyncState, resync_rows
from graphql_api_laposta.sync import (
    ERROR_CODES,
    LIST_REFUSED,
    NOT_CONFIGURED,
    NOT_LINKED,
    LapostaSettings,
    Outcome,
    client_for,
    each,
    link_of,
    member_ids,
    reconcile,
    store,
    unsubscribed,
)

RESYNC = "laposta.resync"
PULL = "laposta.pull_unsubscribes"
PERMISSION = "laposta.manage"
PULL_EVERY = timedelta(days=1)


def _refuse(code: str, field: str = "group_id") -> UserInputError:
    return UserInputError([Problem((field,), code, ERROR_CODES[code])])


def _configured(settings: LapostaSettings | None) -> LapostaSettings:
    if settings is None or not settings.configured:
        raise _refuse(NOT_CONFIGURED)
    return settings


async def _link(session: AsyncSession, job: Job) -> MailingListLink:
    link = await link_of(session, int(job.params["groupId"]))
    if link is None:
        raise _refuse(NOT_LINKED)
    return link


async def _read(client: LapostaClient, list_id: str, state: str | None = None) -> list[Any]:
    """The list's members; Laposta refusing the list (unknown, no access) fails the job."""
    try:
        return await client.members(list_id, state)
    except LapostaError as error:
        raise UserInputError(
            [Problem(("list_id",), LIST_REFUSED, f"{ERROR_CODES[LIST_REFUSED]} {error.short()}")]
        ) from error


async def _items(session: AsyncSession, job: Job, items: Sequence[int]) -> None:
    if items:
        rows = [{"job_id": job.id, "item": item} for item in items]
        await session.execute(insert(JobItem.__table__), rows)


def kinds(settings: LapostaSettings | None) -> dict[str, JobKind]:
    async def prepare_resync(session: AsyncSession, job: Job) -> None:
        """Read the whole list once into ``laposta_resync_rows``: one row per member of
        the group (with its list member, matched by member id, then address) and one per
        list member matching no one. Those rows are the job's items."""
        config = _configured(settings)
        link = await _link(session, job)
        async with client_for(config) as client:
            members = await _read(client, link.list_id)
        group_id = link.group_id
        known = select(MemberSync.contact_id).where(MemberSync.group_id == group_id)
        contacts = list(
            await session.execute(
                select(Contact.id, Contact.email, MemberSync.member_id)
                .outerjoin(
                    MemberSync,
                    (MemberSync.contact_id == Contact.id) & (MemberSync.group_id == group_id),
                )
                .where(Contact.id.in_(member_ids(group_id)) | Contact.id.in_(known))
                .order_by(Contact.id)
            )
        )
        by_id = {m["member_id"]: m for m in members}
        by_email = {str(m["email"]).lower(): m for m in members}
        used: set[str] = set()
        rows: list[dict[str, Any]] = []
        for contact_id, email, member_id in contacts:
            member = by_id.get(member_id) if member_id else None
            if member is None and email:
                member = by_email.get(email.lower())
            if member is not None and member["member_id"] in used:
                member = None
            if member is not None:
                used.add(member["member_id"])
            rows.append(_pair(job, len(rows) + 1, contact_id, member))
        for member in members:
            if member["member_id"] not in used:
                rows.append(_pair(job, len(rows) + 1, None, member))
        await session.execute(delete(resync_rows).where(resync_rows.c.job_id == job.id))
        if rows:
            await session.execute(insert(resync_rows), rows)
        await _items(session, job, [row["item"] for row in rows])
        link.last_pulled_at = utcnow()

    async def run_resync(
        session: AsyncSession, job: Job, owner: Principal, items: list[int]
    ) -> int:
        """Repair these pairs both ways: the group's members onto the list (or their state
        corrected), unsubscribed ones opted out, list members not in the group deleted."""
        config = _configured(settings)
        link = await _link(session, job)
        pairs = list(
            await session.execute(
                select(resync_rows).where(
                    resync_rows.c.job_id == job.id, resync_rows.c.item.in_(items)
                )
            )
        )
        corrected: dict[int, dict[str, Any] | None] = {}
        gone_unsubscribed: list[dict[str, Any]] = []
        strangers: list[str] = []
        for pair in pairs:
            if pair.contact_id is None:
                if pair.list_state == "active":
                    strangers.append(pair.member_id)
                continue
            if pair.list_state == "active":
                state, member_id = SyncState.SYNCED, pair.member_id
            elif pair.list_state == "unsubscribed":
                state, member_id = SyncState.UNSUBSCRIBED, pair.member_id
                gone_unsubscribed.append({"member_id": pair.member_id, "email": pair.email})
            else:
                state, member_id = SyncState.PENDING, None
            corrected[pair.contact_id] = {
                "state": state.value,
                "member_id": member_id,
                "email": pair.email if member_id else None,
                "last_error": None,
                "updated_at": utcnow(),
            }
        await store(session, link.group_id, corrected)
        opted = await unsubscribed(session, link, gone_unsubscribed)
        async with client_for(config) as client:
            done: Outcome = await reconcile(session, client, config, link, list(corrected))
            await each(
                config.concurrency, strangers, lambda m: client.delete_member(link.list_id, m)
            )
        await session.execute(
            delete(resync_rows).where(resync_rows.c.job_id == job.id, resync_rows.c.item.in_(items))
        )
        return done.changed + len(strangers) + opted

    async def prepare_pull(session: AsyncSession, job: Job) -> None:
        """The groups to read back: the one asked for, or every linked group."""
        _configured(settings)
        if job.params.get("groupId") is not None:
            groups = [(await _link(session, job)).group_id]
        else:
            groups = list(
                await session.scalars(
                    select(MailingListLink.group_id).order_by(MailingListLink.group_id)
                )
            )
        await _items(session, job, groups)

    async def run_pull(session: AsyncSession, job: Job, owner: Principal, items: list[int]) -> int:
        """Each group's list's unsubscribed members: opted out here too."""
        config = _configured(settings)
        newly = 0
        async with client_for(config) as client:
            for group_id in items:
                link = await link_of(session, group_id)
                if link is None:
                    continue  # unlinked since the job started
                members = await _read(client, link.list_id, "unsubscribed")
                newly += await unsubscribed(session, link, members)
                link.last_pulled_at = utcnow()
        return newly

    return {
        RESYNC: JobKind(PERMISSION, prepare_resync, run_resync, max_chunk=200),
        PULL: JobKind(PERMISSION, prepare_pull, run_pull, max_chunk=1),
    }


def _pair(job: Job, item: int, contact_id: int | None, member: Any) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "item": item,
        "contact_id": contact_id,
        "member_id": member["member_id"] if member else None,
        "email": member["email"] if member else None,
        "list_state": member["state"] if member else None,
    }


def schedules(settings: LapostaSettings | None) -> list[ScheduledJob]:
    """Read every linked list's unsubscribes back once a day (when configured)."""
    if settings is None or not settings.configured:
        return []
    return [ScheduledJob(PULL, PULL_EVERY)]
