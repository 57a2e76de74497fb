"""GraphQL mutations of groups and their members, with their payloads.

Each mutation declares once, as :class:`ErrorPaths`, which argument carries which domain
field; ``run_mutation`` maps the domain's problems with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.graphql_base.access import needing
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import UserError
from graphql_api.graphql_base.mutations import NO_ARGUMENTS, ErrorPaths, run_mutation
from graphql_api.graphql_base.payloads import DeletePayload
from graphql_api.graphql_base.relay import decode_id, decode_ids
from graphql_api.groups import bulk, lifecycle, membership_reads
from graphql_api.groups.api.filters import ContactFilterInput
from graphql_api.groups.api.inputs import CreateGroupInput, UpdateGroupInput, group_values
from graphql_api.groups.api.types import Group, Membership
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError

if TYPE_CHECKING:
    from graphql_api.jobs.api.types import Job

GROUP_BY_ID = ErrorPaths({"group_id": "id"})
"""``updateGroup(id:, input:)`` and ``deleteGroup(id:)``."""
GROUP_ID = ErrorPaths({"group_id": "groupId"}, input=None)
"""``convertToStatic(groupId:)``."""
MEMBERS = ErrorPaths(
    {"group_id": "groupId", "contact_ids": "contactIds", "from": "from"}, input=None
)
"""``addGroupMembers`` and ``removeGroupMembers``."""


@strawberry.type(description="Result of a group mutation.")
class GroupPayload:
    group: Group | None = strawberry.field(
        default=None, description="The group, when the change was made."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


JobRef = Annotated["Job", strawberry.lazy("graphql_api.jobs.api.types")]


@strawberry.type(description="Result of adding or removing members.")
class MembershipPayload:
    group: Group | None = strawberry.field(
        default=None, description="The group, when the change was made or queued."
    )
    changed_count: int | None = strawberry.field(
        default=0,
        description="How many contacts were actually added or removed (0 when refused); "
        "null while the change runs as a job (read the job's `changed` when it is done).",
    )
    job: JobRef | None = strawberry.field(  # type: ignore[valid-type]
        default=None,
        description="The bulk job (taak) doing the change, when the list was longer than "
        "one request takes (GRAPHQL_API_BULK_INLINE_LIMIT contacts); null when it was made "
        "at once.",
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")
    added: strawberry.Private[list[int]] = dataclasses.field(default_factory=list)

    @strawberry.field(
        description="The links this call created, when it made the change at once (empty "
        "for removals, existing members and jobs)."
    )
    async def memberships(self, info: Info) -> list[Membership]:
        if self.group is None or not self.added:
            return []
        group_pk, added = self.group.id, self.added
        return await info.context.db.run(
            lambda session: membership_reads.links(session, group_pk, added)
        )


@strawberry.input(
    description="A list of contacts named rather than enumerated: everyone in a group, or "
    "everyone a filter matches, at the moment the change runs. Exactly one field."
)
class MemberListInput:
    group_id: strawberry.ID | None = strawberry.field(
        default=None, description="Every member of this group (of any kind)."
    )
    filter: ContactFilterInput | None = strawberry.field(
        default=None, description="Every contact this filter matches (as `contacts(filter:)`)."
    )


def _contact_ids(info: Info, contact_ids: Sequence[str]) -> list[int]:
    limit = info.context.settings.max_ids_per_call
    if len(contact_ids) > limit:
        raise UserInputError.single(
            ["contact_ids"],
            ErrorCode.TOO_MANY,
            f"At most {limit} contacts per call; name a longer list with `from`.",
        )
    if not contact_ids:
        raise UserInputError.single(
            ["contact_ids"], ErrorCode.REQUIRED, "Name at least one contact."
        )
    return decode_ids(contact_ids, "Contact", ["contact_ids"])


def _member_list(
    info: Info, contact_ids: Sequence[str] | None, named: MemberListInput | None
) -> bulk.MemberList:
    """What the caller named, checked: exactly one of ``contactIds`` and ``from``, and in
    ``from`` exactly one of ``groupId`` and ``filter``."""
    if (contact_ids is None) == (named is None):
        raise UserInputError.single(
            ["contact_ids"], ErrorCode.REQUIRED, "Give either contactIds or from, not both."
        )
    if named is None:
        return bulk.MemberList(contact_ids=_contact_ids(info, contact_ids or []))
    if (named.group_id is None) == (named.filter is None):
        raise UserInputError.single(
            ["from"], ErrorCode.REQUIRED, "Give either from.groupId or from.filter, not both."
        )
    if named.group_id is not None:
        return bulk.MemberList(group_id=decode_id(named.group_id, "Group", ["from", "group_id"]))
    assert named.filter is not None
    try:
        tree = named.filter.to_domain()
    except UserInputError as error:
        moved = [Problem(("from", *p.field), p.code, p.message) for p in error.problems]
        raise UserInputError(moved) from error
    return bulk.MemberList(filter=tree)


@strawberry.type
class GroupMutations:
    @strawberry.mutation(
        description=needing(
            "groups.manage",
            "Create a group (Nieuwe groep): static, or dynamic with a filter, or "
            "composite with composedOfIds.",
        )
    )
    async def create_group(
        self,
        info: Info,
        input: Annotated[CreateGroupInput, strawberry.argument(description="Its settings.")],
    ) -> GroupPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            values = group_values(input)
            group = await lifecycle.create_group(session, info.context.principal, values)
            return {"group": group}

        return await run_mutation(info, GroupPayload, NO_ARGUMENTS, work)

    @strawberry.mutation(
        description=needing(
            "groups.manage", "Change a group's settings: absent = unchanged, null = cleared."
        )
    )
    async def update_group(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the group.")],
        input: Annotated[UpdateGroupInput, strawberry.argument(description="The changes.")],
    ) -> GroupPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            group_id = decode_id(id, "Group", ["group_id"])
            changes = group_values(input)
            actor = info.context.principal
            group = await lifecycle.update_group(session, actor, group_id, changes)
            return {"group": group}

        return await run_mutation(info, GroupPayload, GROUP_BY_ID, work)

    @strawberry.mutation(
        description=needing("groups.manage", "Delete a group with its memberships and history.")
    )
    async def delete_group(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the group.")],
    ) -> DeletePayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            group_id = decode_id(id, "Group", ["group_id"])
            await lifecycle.delete_group(session, info.context.principal, group_id)
            return {"deleted_id": id}

        return await run_mutation(info, DeletePayload, GROUP_BY_ID, work)

    @strawberry.mutation(
        description=needing(
            "groups.manage",
            "Freeze a dynamic or composite group's current members into explicit "
            "memberships (source CONVERSION, recorded in the history); the group becomes static.",
        )
    )
    async def convert_to_static(
        self,
        info: Info,
        group_id: Annotated[
            strawberry.ID, strawberry.argument(description="A dynamic or composite group.")
        ],
    ) -> GroupPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(group_id, "Group", ["group_id"])
            return {"group": await lifecycle.convert_to_static(session, info.context.principal, pk)}

        return await run_mutation(info, GroupPayload, GROUP_ID, work)

    @strawberry.mutation(
        description=needing(
            "members.manage",
            "Link contacts to a static group (leden toevoegen): the contacts given by id, "
            "or a named list (`from`: a group's members or a filter's matches). Existing "
            "members are left as they are; one unknown id refuses the whole call. A list "
            "longer than one request takes runs as a bulk job (see `job`).",
        )
    )
    async def add_group_members(
        self,
        info: Info,
        group_id: Annotated[strawberry.ID, strawberry.argument(description="A static group.")],
        contact_ids: Annotated[
            list[strawberry.ID] | None,
            strawberry.argument(description="The contacts to add; or use `from`."),
        ] = None,
        from_: Annotated[
            MemberListInput | None,
            strawberry.argument(name="from", description="The list to add; or use `contactIds`."),
        ] = None,
    ) -> MembershipPayload:
        return await _change_members(info, group_id, contact_ids, from_, bulk.ADD)

    @strawberry.mutation(
        description=needing(
            "members.manage",
            "Unlink contacts from a static group (leden verwijderen), given by id or as a "
            "named list (`from`); the history keeps that they were members. A list longer "
            "than one request takes runs as a bulk job (see `job`).",
        )
    )
    async def remove_group_members(
        self,
        info: Info,
        group_id: Annotated[strawberry.ID, strawberry.argument(description="A static group.")],
        contact_ids: Annotated[
            list[strawberry.ID] | None,
            strawberry.argument(description="The contacts to remove; or use `from`."),
        ] = None,
        from_: Annotated[
            MemberListInput | None,
            strawberry.argument(
                name="from", description="The list to remove; or use `contactIds`."
            ),
        ] = None,
    ) -> MembershipPayload:
        return await _change_members(info, group_id, contact_ids, from_, bulk.REMOVE)


async def _change_members(
    info: Info,
    group_id: str,
    contact_ids: Sequence[str] | None,
    named: MemberListInput | None,
    kind: str,
) -> MembershipPayload:
    """Add or remove members, at once or as a job."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        pk = decode_id(group_id, "Group", ["group_id"])
        members = _member_list(info, contact_ids, named)
        limit = info.context.settings.bulk_inline_limit
        outcome = await bulk.change_members(
            session, info.context.principal, kind, pk, members, inline_limit=limit
        )
        changed = outcome.changed
        return {
            "group": await lifecycle.locked_group(session, pk),
            "changed_count": None if changed is None else len(changed),
            "added": changed if changed is not None and kind == bulk.ADD else [],
            "job": outcome.job,
        }

    return await run_mutation(info, MembershipPayload, MEMBERS, work)
