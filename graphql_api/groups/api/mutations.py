"""GraphQL mutations of groups and their members, with their payloads.

Each mutation declares once, as :class:`ErrorPaths`, which argument carries which domain
field; ``run_mutation`` maps the domain's problems with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.graphql_base.access import needing
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import UserError
from graphql_api.graphql_base.mutations import NO_ARGUMENTS, ErrorPaths, run_mutation
from graphql_api.graphql_base.payloads import DeletePayload
from graphql_api.graphql_base.relay import decode_id, decode_ids
from graphql_api.groups import lifecycle, membership_writes, models
from graphql_api.groups.api.inputs import CreateGroupInput, UpdateGroupInput, group_values
from graphql_api.groups.api.types import Group, Membership
from graphql_api.groups.models import MembershipSource
from graphql_api.kernel.errors import ErrorCode, UserInputError

GROUP_BY_ID = ErrorPaths({"group_id": "id"})
"""``updateGroup(id:, input:)`` and ``deleteGroup(id:)``."""
GROUP_ID = ErrorPaths({"group_id": "groupId"}, input=None)
"""``convertToStatic(groupId:)``."""
MEMBERS = ErrorPaths({"group_id": "groupId", "contact_ids": "contactIds"}, input=None)
"""``addGroupMembers`` and ``removeGroupMembers``."""


@strawberry.type(description="Result of a group mutation.")
class GroupPayload:
    group: Group | None = strawberry.field(
        default=None, description="The group, when the change was made."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="Result of adding or removing members.")
class MembershipPayload:
    group: Group | None = strawberry.field(
        default=None, description="The group, when the change was made."
    )
    memberships: list[Membership] = strawberry.field(
        default_factory=list,
        description="The links this call created (empty for removals and for existing members).",
    )
    changed_count: int = strawberry.field(
        default=0, description="How many contacts were actually added or removed."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


def _contact_ids(info: Info, contact_ids: Sequence[str]) -> list[int]:
    limit = info.context.settings.max_ids_per_call
    if len(contact_ids) > limit:
        raise UserInputError.single(
            ["contact_ids"], ErrorCode.TOO_MANY, f"At most {limit} contacts per call."
        )
    if not contact_ids:
        raise UserInputError.single(
            ["contact_ids"], ErrorCode.REQUIRED, "Name at least one contact."
        )
    return decode_ids(contact_ids, "Contact", ["contact_ids"])


def _source(count: int) -> MembershipSource:
    return MembershipSource.MANUAL if count == 1 else MembershipSource.BULK


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
            "Link contacts to a static group. Existing members are left as they are; "
            "one unknown id refuses the whole call.",
        )
    )
    async def add_group_members(
        self,
        info: Info,
        group_id: Annotated[strawberry.ID, strawberry.argument(description="A static group.")],
        contact_ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="The contacts to add.")
        ],
    ) -> MembershipPayload:
        return await _change_members(info, group_id, contact_ids, membership_writes.add_members)

    @strawberry.mutation(
        description=needing(
            "members.manage",
            "Unlink contacts from a static group; the history keeps that they were members.",
        )
    )
    async def remove_group_members(
        self,
        info: Info,
        group_id: Annotated[strawberry.ID, strawberry.argument(description="A static group.")],
        contact_ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="The contacts to remove.")
        ],
    ) -> MembershipPayload:
        return await _change_members(info, group_id, contact_ids, membership_writes.remove_members)


async def _change_members(
    info: Info,
    group_id: str,
    contact_ids: Sequence[str],
    change: Callable[..., Awaitable[Sequence[models.Membership | int]]],
) -> MembershipPayload:
    """Add or remove members; the payload lists the links made (none for removals)."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        pk = decode_id(group_id, "Group", ["group_id"])
        ids = _contact_ids(info, contact_ids)
        changed = await change(session, info.context.principal, pk, ids, _source(len(ids)))
        return {
            "group": await lifecycle.locked_group(session, pk),
            "memberships": [m for m in changed if isinstance(m, models.Membership)],
            "changed_count": len(changed),
        }

    return await run_mutation(info, MembershipPayload, MEMBERS, work)
