"""Lists of members, enumerated or named, changed at once or as a bulk job.

A cooperative works in lists: "everyone in group X", "everyone matching this filter", or
ten thousand ids pasted from a spreadsheet. A list that fits in a request's time budget
(``bulk_inline_limit`` contacts) is changed in the request's transaction. A longer one
becomes a job (``graphql_api.jobs``): the request answers at once, and the worker changes
the list in chunks, each chunk one transaction with its history, events and progress.

A named list is read when the job runs, not when it is asked for: "everyone in group X"
means X's members at that moment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.groups.graph import lock_graph
from graphql_api.groups.membership_reads import filter_contacts, members_of
from graphql_api.groups.membership_writes import (
    add_members,
    existing_contacts,
    remove_members,
    static_group,
)
from graphql_api.groups.models import Group, MembershipSource
from graphql_api.jobs.kinds import JobKind, RunChunk
from graphql_api.jobs.models import Job, JobItem
from graphql_api.jobs.service import start_job
from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError

ADD = "members.add"
REMOVE = "members.remove"
_CHANGES = {ADD: (add_members, "add", "to"), REMOVE: (remove_members, "remove", "from")}


@dataclass(frozen=True)
class MemberList:
    """The contacts a change is about: given by id, or named as a group's members or the
    contacts a filter matches. Exactly one is set."""

    contact_ids: Sequence[int] | None = None
    group_id: int | None = None
    filter: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Outcome:
    """Changed now (``changed``: the ids added or removed), or queued as ``job``."""

    changed: list[int] | None = None
    job: Job | None = None


@requires("members.manage")
async def change_members(
    session: AsyncSession,
    actor: Principal,
    kind: str,
    group_id: int,
    members: MemberList,
    *,
    inline_limit: int,
) -> Outcome:
    """Add (``ADD``) or remove (``REMOVE``) a list of contacts: in this transaction when
    it holds at most ``inline_limit`` contacts, else as a job. Everything that can be
    checked now is (the target is a static group, the ids exist, the filter is valid), so
    a job starts only for a change that could be made."""
    # The graph's lock before any row's, as every change of members takes them.
    await lock_graph(session, shared=True)
    group = await static_group(session, group_id)
    change, _, _ = _CHANGES[kind]
    if members.contact_ids is not None:
        ids = await existing_contacts(session, members.contact_ids)
        if len(ids) <= inline_limit:
            source = MembershipSource.MANUAL if len(ids) == 1 else MembershipSource.BULK
            # The list as given, so a plugin's refusal points at the contact's place in it.
            given = members.contact_ids
            return Outcome(changed=await change(session, actor, group.id, given, source))
        cause = _cause(kind, group, f"{len(ids)} contacts")
        params = {"groupId": group.id}
        return Outcome(
            job=await start_job(
                session, kind=kind, owner=actor, params=params, cause=cause, items=ids
            )
        )
    query, named = await _named(session, members)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    if total is not None and total <= inline_limit:
        ids = list(await session.scalars(query))
        return Outcome(changed=await change(session, actor, group.id, ids, MembershipSource.BULK))
    params = {"groupId": group.id, "from": _plain(members)}
    cause = _cause(kind, group, named)
    job = await start_job(session, kind=kind, owner=actor, params=params, cause=cause, items=None)
    return Outcome(job=job)


def _cause(kind: str, group: Group, who: str) -> str:
    _, verb, preposition = _CHANGES[kind]
    return f"{verb} {who} {preposition} group {group.id} ({group.name!r})"


def _plain(members: MemberList) -> dict[str, Any]:
    if members.group_id is not None:
        return {"groupId": members.group_id}
    return {"filter": dict(members.filter or {})}


async def _named(session: AsyncSession, members: MemberList) -> tuple[Select[Any], str]:
    """The ids of a named list, in id order, and the list in words; a group that does not
    exist or a filter that does not validate is refused."""
    if members.group_id is not None:
        source = await session.get(Group, members.group_id)
        if source is None:
            raise UserInputError.single(
                ["from", "group_id"], ErrorCode.NOT_FOUND, "No group with this id."
            )
        query = members_of(source.id, source.kind).with_only_columns(Contact.id)
        return query.order_by(Contact.id), f"the members of group {source.id} ({source.name!r})"
    if members.filter is None:
        raise UserInputError.single(
            ["contact_ids"], ErrorCode.REQUIRED, "Name the contacts, or a group or a filter."
        )
    try:
        query = await filter_contacts(session, select(Contact.id), dict(members.filter))
    except UserInputError as error:
        moved = [Problem(("from", *p.field), p.code, p.message) for p in error.problems]
        raise UserInputError(moved) from error
    return query.order_by(Contact.id), "the contacts matching a filter"


async def _prepare(session: AsyncSession, job: Job) -> None:
    """Store a named list as the job's items, read now, in one statement."""
    named = job.params["from"]
    members = MemberList(group_id=named.get("groupId"), filter=named.get("filter"))
    query, _ = await _named(session, members)
    items = query.subquery()
    rows = select(literal(job.id), items.c.id)
    await session.execute(insert(JobItem.__table__).from_select(["job_id", "item"], rows))


def _chunk(kind: str) -> RunChunk:
    """What one chunk of a ``kind`` job does: the same change as inline, naming the job."""
    change, _, _ = _CHANGES[kind]

    async def run_chunk(
        session: AsyncSession, job: Job, actor: Principal, contact_ids: list[int]
    ) -> int:
        source = MembershipSource.BULK
        done = await change(
            session, actor, job.params["groupId"], contact_ids, source, job_id=job.id
        )
        return len(done)

    return run_chunk


JOB_KINDS = {
    kind: JobKind(permission="members.manage", prepare=_prepare, run_chunk=_chunk(kind))
    for kind in (ADD, REMOVE)
}
"""The bulk membership jobs, for the composition root to register."""
