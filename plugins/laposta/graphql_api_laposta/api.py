"""The GraphQL side: ``linkMailingList``, ``unlinkMailingList``, ``resyncMailingList``,
``pullMailingListUnsubscribes`` and ``mailingListSync``."""

# Strawberry reads these resolvers' annotations at runtime: no postponed annotations here.
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import (
    After,
    Connection,
    Contact,
    ContactType,
    ErrorCode,
    ErrorPaths,
    First,
    Group,
    GroupType,
    Info,
    JobType,
    Ordering,
    Problems,
    UserError,
    UserInputError,
    clean_text,
    decode_id,
    guarded_field,
    needing,
    paginate,
    query_id,
    run_mutation,
    start_job,
)
from graphql_api_laposta.jobs import PERMISSION, PULL, RESYNC
from graphql_api_laposta.models import MailingListLink, MemberSync, SyncState
from graphql_api_laposta.sync import (
    ALREADY_LINKED,
    ERROR_CODES,
    LIST_TAKEN,
    LapostaSettings,
    link_of,
    mark_pending,
    no_group,
    not_linked,
    require_configured,
)

LIST_ID = re.compile(r"^[A-Za-z0-9_-]+$")
ARGUMENTS = ErrorPaths({"group_id": "groupId", "list_id": "listId"}, input=None)
BY_CONTACT = Ordering((MemberSync.contact_id,))


@strawberry.type(description="How many members of a linked group are in each sync state.")
class MailingListCounts:
    pending: int = strawberry.field(description="Not pushed to the list yet.")
    synced: int = strawberry.field(description="On the list, as last pushed.")
    error: int = strawberry.field(description="Refused by Laposta (see `errors`).")
    unsubscribed: int = strawberry.field(
        description="Unsubscribed (afgemeld), on the list or by the group's opt-out."
    )


async def _error_contact(root: strawberry.Parent[MemberSync], info: Info) -> ContactType | None:
    return await info.context.loader(_contacts).load(root.contact_id)


def _error_message(root: strawberry.Parent[MemberSync]) -> str:
    return root.last_error or ""


def _error_at(root: strawberry.Parent[MemberSync]) -> datetime:
    return root.updated_at


@strawberry.type(description="A member Laposta refused, with the reason it gave.")
class MailingListSyncError:
    contact: ContactType | None = strawberry.field(
        resolver=_error_contact, description="The contact (contactpersoon)."
    )
    last_error: str = strawberry.field(
        resolver=_error_message, description="Laposta's last error for this member."
    )
    at: datetime = strawberry.field(resolver=_error_at, description="When it was refused.")


async def _contacts(session: AsyncSession, ids: Sequence[int]) -> list[Contact | None]:
    rows = {c.id: c for c in await session.scalars(select(Contact).where(Contact.id.in_(ids)))}
    return [rows.get(i) for i in ids]


async def _counts(session: AsyncSession, group_ids: Sequence[int]) -> list[MailingListCounts]:
    rows = await session.execute(
        select(MemberSync.group_id, MemberSync.state, func.count())
        .where(MemberSync.group_id.in_(group_ids))
        .group_by(MemberSync.group_id, MemberSync.state)
    )
    counted: dict[int, dict[str, int]] = {}
    for group_id, state, count in rows:
        counted.setdefault(group_id, {})[state] = count
    return [
        MailingListCounts(
            pending=counted.get(g, {}).get(SyncState.PENDING, 0),
            synced=counted.get(g, {}).get(SyncState.SYNCED, 0),
            error=counted.get(g, {}).get(SyncState.ERROR, 0),
            unsubscribed=counted.get(g, {}).get(SyncState.UNSUBSCRIBED, 0),
        )
        for g in group_ids
    ]


async def _link_counts(root: strawberry.Parent[MailingListLink], info: Info) -> MailingListCounts:
    return await info.context.loader(_counts).load(root.group_id)


async def _link_errors(
    root: strawberry.Parent[MailingListLink], info: Info, first: First = None, after: After = None
) -> Connection[MailingListSyncError]:
    query = select(MemberSync).where(
        MemberSync.group_id == root.group_id, MemberSync.state == SyncState.ERROR.value
    )
    return await paginate(
        info, query, BY_CONTACT, first=first, after=after, key_of=lambda r: (r.contact_id,)
    )


@strawberry.type(
    description="A group's link with a Laposta mailing list (mailinglijst) and how its "
    "members stand there."
)
class MailingListSync:
    list_id: str = strawberry.field(description="The Laposta list's id.")
    linked_at: datetime = strawberry.field(description="When the group was linked.")
    last_pulled_at: datetime | None = strawberry.field(
        description="When the list's unsubscribes were last read back (pull or resync)."
    )

    counts: MailingListCounts = strawberry.field(
        resolver=_link_counts, description="Members per sync state."
    )
    errors: Connection[MailingListSyncError] = strawberry.field(
        resolver=_link_errors, description="Members Laposta refused, by contact id."
    )


@strawberry.type(description="Result of linking a group to a Laposta list, or of starting a job.")
class MailingListJobPayload:
    sync: MailingListSync | None = strawberry.field(
        default=None, description="The group's link, when the change was made."
    )
    job: JobType | None = strawberry.field(
        default=None, description="The job started (a resync, or a pull of unsubscribes)."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="Result of unlinking a group from its Laposta list.")
class UnlinkMailingListPayload:
    group: GroupType | None = strawberry.field(
        default=None, description="The group, no longer linked."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


GroupId = Annotated[strawberry.ID, strawberry.argument(description="The group (groep).")]
ListId = Annotated[
    str, strawberry.argument(description="The Laposta list's id (as in Laposta's list URL).")
]


async def _group(session: AsyncSession, group_id: strawberry.ID) -> int:
    pk = decode_id(group_id, "Group", ["group_id"])
    if await session.get(Group, pk) is None:
        raise no_group()
    return pk


def fields(settings: LapostaSettings | None) -> tuple[list[Any], list[Any]]:
    """The plugin's query and mutation fields."""

    async def link_mailing_list(
        info: Info, group_id: GroupId, list_id: ListId
    ) -> MailingListJobPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            principal = info.context.principal
            principal.require(PERMISSION)
            require_configured(settings)
            problems = Problems()
            cleaned = clean_text(problems, ["list_id"], list_id, max_length=50, required=True)
            if cleaned is not None and not LIST_ID.match(cleaned):
                problems.add(
                    ["list_id"],
                    ErrorCode.INVALID,
                    "A Laposta list id has letters, digits, - and _ only.",
                )
            problems.raise_if_any()
            pk = await _group(session, group_id)
            if await link_of(session, pk) is not None:
                raise UserInputError.single(
                    ["group_id"], ALREADY_LINKED, ERROR_CODES[ALREADY_LINKED]
                )
            taken = await session.scalar(
                select(MailingListLink.group_id).where(MailingListLink.list_id == cleaned)
            )
            if taken is not None:
                raise UserInputError.single(["list_id"], LIST_TAKEN, ERROR_CODES[LIST_TAKEN])
            link = MailingListLink(group_id=pk, list_id=cleaned, linked_by_id=principal.user_id)
            session.add(link)
            await session.flush()
            await mark_pending(session, pk)
            job = await start_job(
                session,
                kind=RESYNC,
                owner=principal,
                params={"groupId": pk},
                cause=f"sync group {pk} with Laposta list {cleaned}",
                items=None,
            )
            return {"sync": link, "job": job}

        return await run_mutation(info, MailingListJobPayload, ARGUMENTS, work)

    async def unlink_mailing_list(info: Info, group_id: GroupId) -> UnlinkMailingListPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            info.context.principal.require(PERMISSION)
            require_configured(settings)
            pk = await _group(session, group_id)
            link = await link_of(session, pk)
            if link is None:
                raise not_linked()
            await session.execute(delete(MemberSync).where(MemberSync.group_id == pk))
            await session.delete(link)
            await session.flush()
            return {"group": await session.get(Group, pk)}

        return await run_mutation(info, UnlinkMailingListPayload, ARGUMENTS, work)

    def starter(kind: str, cause: str) -> Any:
        async def start(info: Info, group_id: GroupId) -> MailingListJobPayload:
            async def work(session: AsyncSession) -> dict[str, Any]:
                principal = info.context.principal
                principal.require(PERMISSION)
                require_configured(settings)
                pk = await _group(session, group_id)
                link = await link_of(session, pk)
                if link is None:
                    raise not_linked()
                job = await start_job(
                    session,
                    kind=kind,
                    owner=principal,
                    params={"groupId": pk},
                    cause=cause.format(group=pk, list=link.list_id),
                    items=None,
                )
                return {"sync": link, "job": job}

            return await run_mutation(info, MailingListJobPayload, ARGUMENTS, work)

        return start

    async def mailing_list_sync(info: Info, group_id: GroupId) -> MailingListSync | None:
        pk = query_id(group_id, "Group")
        return await info.context.db.run(lambda session: link_of(session, pk))

    queries = [
        guarded_field(
            "groups.view",
            "The group's link with a Laposta mailing list and its members' sync states; "
            "null when the group is not linked.",
            resolver=mailing_list_sync,
            name="mailingListSync",
        )
    ]
    mutations = [
        strawberry.mutation(
            resolver=link_mailing_list,
            name="linkMailingList",
            description=needing(
                PERMISSION,
                "Link a group to a Laposta list (one list per group, one group per list) "
                "and start a full resync job that fills the list.",
            ),
        ),
        strawberry.mutation(
            resolver=unlink_mailing_list,
            name="unlinkMailingList",
            description=needing(
                PERMISSION,
                "Stop syncing the group; the list on Laposta is left as it is.",
            ),
        ),
        strawberry.mutation(
            resolver=starter(RESYNC, "resync group {group} with Laposta list {list}"),
            name="resyncMailingList",
            description=needing(
                PERMISSION,
                "Start a full resync job: compares the list with the group and repairs both ways.",
            ),
        ),
        strawberry.mutation(
            resolver=starter(PULL, "read unsubscribes of Laposta list {list} for group {group}"),
            name="pullMailingListUnsubscribes",
            description=needing(
                PERMISSION,
                "Start a job reading the list's unsubscribed members back as the group's "
                "opt-outs (also done once a day).",
            ),
        ),
    ]
    return queries, mutations
