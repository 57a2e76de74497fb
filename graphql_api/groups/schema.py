"""GraphQL types, queries and mutations for groups and memberships."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact as ContactModel
from graphql_api.email_templates.models import EmailTemplate as EmailTemplateModel
from graphql_api.errors import ErrorCode, UserInputError
from graphql_api.graphql.context import Info
from graphql_api.graphql.errors import UserError
from graphql_api.graphql.mutations import given_fields, run_mutation
from graphql_api.graphql.payloads import DeletePayload
from graphql_api.graphql.relay import (
    After,
    Connection,
    First,
    Node,
    decode_id,
    decode_ids,
    global_id_field,
    paginate,
    query_id,
    rows_of,
)
from graphql_api.groups import service
from graphql_api.groups.filter_schema import (
    ContactFilter,
    ContactFilterInput,
    filter_from_domain,
    filter_to_domain,
)
from graphql_api.groups.loaders import load_has_member, load_links, load_member_counts, load_used_by
from graphql_api.groups.membership import (
    group_ids_of_contact,
    members_query,
    membership_path,
)
from graphql_api.groups.models import (
    CompositionMode,
    GroupKind,
    LinkRole,
    MembershipAction,
    MembershipSource,
)
from graphql_api.groups.models import Group as GroupModel
from graphql_api.groups.models import Membership as MembershipModel
from graphql_api.groups.models import MembershipEvent as MembershipEventModel
from graphql_api.groups.queries import GROUP_ORDERINGS, GroupCriteria, GroupOrder, groups_query
from graphql_api.naming import api_field
from graphql_api.pagination import Ordering
from graphql_api.repository import load_by_id
from graphql_api.roles.schema import Role
from graphql_api.users.schema import User, user_by_id

if TYPE_CHECKING:
    from graphql_api.contacts.schema import Contact
    from graphql_api.email_templates.schema import EmailTemplate

ContactRef = Annotated["Contact", strawberry.lazy("graphql_api.contacts.schema")]
EmailTemplateRef = Annotated["EmailTemplate", strawberry.lazy("graphql_api.email_templates.schema")]

GroupKindType = strawberry.enum(
    GroupKind,
    name="GroupKind",
    description="STATIC (statische groep: explicit members), DYNAMIC (dynamische groep: a "
    "stored filter) or COMPOSITE (samengestelde groep: built from other groups).",
)
MembershipSourceType = strawberry.enum(
    MembershipSource, name="MembershipSource", description="Through which path a link was made."
)
MembershipActionType = strawberry.enum(
    MembershipAction, name="MembershipAction", description="Whether a contact was added or removed."
)
GroupOrderType = strawberry.enum(GroupOrder, name="GroupOrder", description="Order of `groups`.")
CompositionModeType = strawberry.enum(
    CompositionMode,
    name="CompositionMode",
    description="How a composite combines its groups: ANY = member of at least one (union), "
    "ALL = member of every one (intersection).",
)

MEMBERS_BY_ID = Ordering((ContactModel.id,))
HISTORY_NEWEST_FIRST = Ordering((MembershipEventModel.id,), descending=True)


@strawberry.type(description="A contact explicitly linked to a static group (contactkoppeling).")
class Membership:
    member_since: datetime = strawberry.field(
        description="When the contact was linked (lid sinds)."
    )
    source: MembershipSourceType = strawberry.field(description="How the link was made.")

    @strawberry.field(description="The static group.")
    async def group(self, root: strawberry.Parent[MembershipModel], info: Info) -> Group:
        return await info.context.loader(load_by_id(GroupModel)).load(root.group_id)

    @strawberry.field(description="The linked contact.")
    async def contact(self, root: strawberry.Parent[MembershipModel], info: Info) -> ContactRef:
        return await info.context.loader(load_by_id(ContactModel)).load(root.contact_id)

    @strawberry.field(description="Who made the link; null when the user no longer exists.")
    async def added_by(self, root: strawberry.Parent[MembershipModel], info: Info) -> User | None:
        return await user_by_id(info, root.added_by_id)  # type: ignore[return-value]


@strawberry.type(description="One entry of a group's membership history; never changed or removed.")
class MembershipEvent(Node):
    id: strawberry.ID = global_id_field("MembershipEvent")
    action: MembershipActionType = strawberry.field(description="ADDED or REMOVED.")
    source: MembershipSourceType = strawberry.field(description="Through which path.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    is_type_of = rows_of(MembershipEventModel)

    @strawberry.field(description="The contact added or removed.")
    async def contact(
        self, root: strawberry.Parent[MembershipEventModel], info: Info
    ) -> ContactRef:
        return await info.context.loader(load_by_id(ContactModel)).load(root.contact_id)

    @strawberry.field(description="Who did it; null when unknown.")
    async def actor(self, root: strawberry.Parent[MembershipEventModel], info: Info) -> User | None:
        return await user_by_id(info, root.actor_id)  # type: ignore[return-value]


@strawberry.type(
    description="A group of contacts (groep) with the settings of the 'Nieuwe groep' form."
)
class Group(Node):
    id: strawberry.ID = global_id_field("Group")
    name: str = strawberry.field(description="Name (Naam); unique, case-insensitively.")
    description: str | None = strawberry.field(description="Description (Omschrijving).")
    kind: GroupKindType = strawberry.field(description="Static, dynamic or composite.")
    start_date: date | None = strawberry.field(
        description="Start date (Startdatum); informational, no effect on membership."
    )
    end_date: date | None = strawberry.field(
        description="End date (Datum gereed); informational, never before startDate."
    )
    show_on_portal: bool = strawberry.field(
        description="Shown on the customer portal (Zichtbaar op portaal)."
    )
    show_on_contact: bool = strawberry.field(
        description="Shown on the contact's page (Zichtbaar bij contact)."
    )
    editable_on_portal: bool = strawberry.field(
        description="Contacts may change their own membership on the portal "
        "(Veranderen op portaal)."
    )
    email_on_new_member: bool = strawberry.field(
        description="Send newMemberEmailTemplate to each new member "
        "(Verstuur e-mail bij nieuwe contactkoppeling)."
    )
    closed: bool = strawberry.field(
        description="Closed, i.e. archived (Gesloten); still queryable, hidden from pickers."
    )
    created_at: datetime = strawberry.field(description="When it was created (Gemaakt op).")
    updated_at: datetime = strawberry.field(description="When its settings last changed.")
    composition_mode: CompositionModeType = strawberry.field(
        description="How composedOf is combined: ANY (union) or ALL (intersection)."
    )
    is_type_of = rows_of(GroupModel)

    @strawberry.field(
        description="The groups this composite is built from (Samengesteld uit), as listed."
    )
    async def composed_of(self, root: strawberry.Parent[GroupModel], info: Info) -> list[Group]:
        return (await info.context.loader(load_links).load(root.id))[LinkRole.INCLUDE]

    @strawberry.field(description="Groups whose members are left out of this composite.")
    async def excluded_groups(self, root: strawberry.Parent[GroupModel], info: Info) -> list[Group]:
        return (await info.context.loader(load_links).load(root.id))[LinkRole.EXCLUDE]

    @strawberry.field(description="A dynamic group's filter, as it was written; null otherwise.")
    def filter(self, root: strawberry.Parent[GroupModel]) -> ContactFilter | None:
        return filter_from_domain(root.filter)

    @strawberry.field(
        description="Groups that include or exclude this group, or name it in a memberOf "
        "filter; while there are any, it cannot be deleted."
    )
    async def used_by(self, root: strawberry.Parent[GroupModel], info: Info) -> list[Group]:
        return await info.context.loader(load_used_by).load(root.id)

    @strawberry.field(
        description="Why a contact is a member: this group, then each group down to the static "
        "group or dynamic filter that holds the contact. Null when it is not a member."
    )
    async def membership_path(
        self,
        root: strawberry.Parent[GroupModel],
        info: Info,
        contact_id: Annotated[strawberry.ID, strawberry.argument(description="A contact id.")],
    ) -> list[Group] | None:
        contact_pk = query_id(contact_id, "Contact")
        path = await info.context.db.run(
            lambda session: membership_path(session, root.id, contact_pk)
        )
        if path is None:
            return None
        return await info.context.loader(load_by_id(GroupModel)).load_many(path)

    @strawberry.field(description="Owner and point of contact (Verantwoordelijke).")
    async def responsible(self, root: strawberry.Parent[GroupModel], info: Info) -> User | None:
        return await user_by_id(info, root.responsible_id)  # type: ignore[return-value]

    @strawberry.field(description="Who created the group (Gemaakt door).")
    async def created_by(self, root: strawberry.Parent[GroupModel], info: Info) -> User | None:
        return await user_by_id(info, root.created_by_id)  # type: ignore[return-value]

    @strawberry.field(description="The template sent to new members when emailOnNewMember is on.")
    async def new_member_email_template(
        self, root: strawberry.Parent[GroupModel], info: Info
    ) -> EmailTemplateRef | None:
        if root.new_member_email_template_id is None:
            return None
        loader = info.context.loader(load_by_id(EmailTemplateModel))
        return await loader.load(root.new_member_email_template_id)

    @strawberry.field(
        description="Role members get in the neighbourhood approach (Rol in buurtaanpak)."
    )
    def neighbourhood_role(self, root: strawberry.Parent[GroupModel], info: Info) -> Role | None:
        if root.neighbourhood_role is None:
            return None
        return info.context.roles.get(root.neighbourhood_role)  # type: ignore[return-value]

    @strawberry.field(description="The members (leden), oldest contact first.")
    async def members(
        self,
        root: strawberry.Parent[GroupModel],
        info: Info,
        first: First = None,
        after: After = None,
        search: Annotated[
            str | None,
            strawberry.argument(description="Case-insensitive text in name, e-mail or city."),
        ] = None,
    ) -> Connection[ContactRef]:
        term = search.strip() if search else None
        query = await info.context.db.run(lambda session: members_query(session, root.id, term))
        return await paginate(
            info, query, MEMBERS_BY_ID, first=first, after=after, key_of=lambda c: (c.id,)
        )

    @strawberry.field(description="Number of members; one aggregate query for all groups asked.")
    async def member_count(self, root: strawberry.Parent[GroupModel], info: Info) -> int:
        return await info.context.loader(load_member_counts).load(root.id)

    @strawberry.field(description="Whether the contact is a member of this group.")
    async def has_member(
        self,
        root: strawberry.Parent[GroupModel],
        info: Info,
        contact_id: Annotated[strawberry.ID, strawberry.argument(description="A contact id.")],
    ) -> bool:
        pair = (root.id, query_id(contact_id, "Contact"))
        return await info.context.loader(load_has_member).load(pair)

    @strawberry.field(description="Every add and remove of a member, newest first.")
    async def history(
        self,
        root: strawberry.Parent[GroupModel],
        info: Info,
        first: First = None,
        after: After = None,
    ) -> Connection[MembershipEvent]:
        query = select(MembershipEventModel).where(MembershipEventModel.group_id == root.id)
        return await paginate(
            info, query, HISTORY_NEWEST_FIRST, first=first, after=after, key_of=lambda e: (e.id,)
        )


SETTING_DESCRIPTIONS = {
    "name": "Name (Naam): required, unique case-insensitively, at most 200 characters.",
    "description": "Description (Omschrijving), at most 10,000 characters.",
    "responsible_id": "User responsible for the group (Verantwoordelijke).",
    "start_date": "Start date (Startdatum).",
    "end_date": "End date (Datum gereed); not before startDate.",
    "show_on_portal": "Zichtbaar op portaal.",
    "show_on_contact": "Zichtbaar bij contact.",
    "editable_on_portal": "Veranderen op portaal.",
    "email_on_new_member": "Verstuur e-mail bij nieuwe contactkoppeling; needs a template.",
    "new_member_email_template_id": "The template sent to new members.",
    "neighbourhood_role": "Key of a registered role (Rol in buurtaanpak), e.g. `coach`.",
    "closed": "Gesloten (archived).",
    "composed_of_ids": "Groups this composite is built from (Samengesteld uit); any kind, "
    "nested to any depth. Empty makes a static group.",
    "composition_mode": "ANY (union, default) or ALL (intersection) of composedOfIds.",
    "excluded_group_ids": "Groups whose members are removed from the composite.",
    "filter": "Makes the group dynamic: its members are the contacts matching this filter.",
}


def _setting(name: str) -> Any:
    return strawberry.field(default=strawberry.UNSET, description=SETTING_DESCRIPTIONS[name])


@strawberry.input(description="A new group. Absent settings take their defaults (off, empty).")
class CreateGroupInput:
    name: str = strawberry.field(description=SETTING_DESCRIPTIONS["name"])
    description: str | None = _setting("description")
    responsible_id: strawberry.ID | None = _setting("responsible_id")
    start_date: date | None = _setting("start_date")
    end_date: date | None = _setting("end_date")
    show_on_portal: bool | None = _setting("show_on_portal")
    show_on_contact: bool | None = _setting("show_on_contact")
    editable_on_portal: bool | None = _setting("editable_on_portal")
    email_on_new_member: bool | None = _setting("email_on_new_member")
    new_member_email_template_id: strawberry.ID | None = _setting("new_member_email_template_id")
    neighbourhood_role: str | None = _setting("neighbourhood_role")
    closed: bool | None = _setting("closed")
    composed_of_ids: list[strawberry.ID] | None = _setting("composed_of_ids")
    composition_mode: CompositionModeType | None = _setting("composition_mode")
    excluded_group_ids: list[strawberry.ID] | None = _setting("excluded_group_ids")
    filter: ContactFilterInput | None = _setting("filter")


@strawberry.input(description="Changes to a group: absent fields stay unchanged, null clears.")
class UpdateGroupInput:
    name: str | None = _setting("name")
    description: str | None = _setting("description")
    responsible_id: strawberry.ID | None = _setting("responsible_id")
    start_date: date | None = _setting("start_date")
    end_date: date | None = _setting("end_date")
    show_on_portal: bool | None = _setting("show_on_portal")
    show_on_contact: bool | None = _setting("show_on_contact")
    editable_on_portal: bool | None = _setting("editable_on_portal")
    email_on_new_member: bool | None = _setting("email_on_new_member")
    new_member_email_template_id: strawberry.ID | None = _setting("new_member_email_template_id")
    neighbourhood_role: str | None = _setting("neighbourhood_role")
    closed: bool | None = _setting("closed")
    composed_of_ids: list[strawberry.ID] | None = _setting("composed_of_ids")
    composition_mode: CompositionModeType | None = _setting("composition_mode")
    excluded_group_ids: list[strawberry.ID] | None = _setting("excluded_group_ids")
    filter: ContactFilterInput | None = _setting("filter")


REFERENCES = {"responsible_id": "User", "new_member_email_template_id": "EmailTemplate"}


def group_values(input_object: CreateGroupInput | UpdateGroupInput) -> dict[str, Any]:
    """The settings the caller gave, with global ids turned into primary keys."""
    values = given_fields(input_object)
    for setting, type_name in REFERENCES.items():
        if values.get(setting) is not None:
            values[setting] = decode_id(values[setting], type_name, [api_field(setting)])
    for setting in ("composed_of_ids", "excluded_group_ids"):
        if values.get(setting) is not None:
            values[setting] = decode_ids(values[setting], "Group", [api_field(setting)])
    if values.get("filter") is not None:
        values["filter"] = filter_to_domain(values["filter"])
    return values


@strawberry.input(description="Narrows `groups`; every criterion given must hold.")
class GroupFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive text in the name."
    )
    kind: GroupKindType | None = strawberry.field(default=None, description="Only this kind.")
    closed: bool | None = strawberry.field(
        default=None, description="false for open groups (default pickers), true for archived."
    )
    responsible_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only groups this user is responsible for."
    )
    neighbourhood_role: str | None = strawberry.field(
        default=None, description="Only groups giving this role key."
    )
    has_member_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only groups this contact is in."
    )

    def criteria(self) -> GroupCriteria:
        return GroupCriteria(
            search=self.search,
            kind=self.kind,
            closed=self.closed,
            responsible_id=query_id(self.responsible_id, "User") if self.responsible_id else None,
            neighbourhood_role=self.neighbourhood_role,
        )


@strawberry.type(description="Result of a group mutation.")
class GroupPayload:
    group: Group | None = strawberry.field(description="The group, when the change was made.")
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="Result of adding or removing members.")
class MembershipPayload:
    group: Group | None = strawberry.field(description="The group, when the change was made.")
    memberships: list[Membership] = strawberry.field(
        description="The links this call created (empty for removals and for existing members)."
    )
    changed_count: int = strawberry.field(
        description="How many contacts were actually added or removed."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type
class GroupQueries:
    @strawberry.field(description="One group by id; null when it does not exist.")
    async def group(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the group.")],
    ) -> Group | None:
        return await info.context.loader(load_by_id(GroupModel)).load(query_id(id, "Group"))

    @strawberry.field(description="Groups (groepen), filtered and ordered, a page at a time.")
    async def groups(
        self,
        info: Info,
        filter: Annotated[
            GroupFilter | None, strawberry.argument(description="Which groups.")
        ] = None,
        order_by: Annotated[
            GroupOrderType | None, strawberry.argument(description="Sort order; NAME_ASC if null.")
        ] = GroupOrder.NAME_ASC,
        first: First = None,
        after: After = None,
    ) -> Connection[Group]:
        ordering = GROUP_ORDERINGS[GroupOrder(order_by or GroupOrder.NAME_ASC)]
        query = groups_query(filter.criteria() if filter else GroupCriteria())
        if filter and filter.has_member_id:
            contact_pk = query_id(filter.has_member_id, "Contact")
            ids = await info.context.db.run(
                lambda session: group_ids_of_contact(session, contact_pk)
            )
            query = query.where(GroupModel.id.in_(ids))
        return await paginate(
            info,
            query,
            ordering,
            first=first,
            after=after,
            key_of=lambda g: tuple(getattr(g, c.key) for c in ordering.columns),
        )


def _contact_ids(info: Info, contact_ids: Sequence[str]) -> list[int]:
    limit = info.context.settings.max_ids_per_call
    if len(contact_ids) > limit:
        raise UserInputError.single(
            ["contactIds"], ErrorCode.TOO_MANY, f"At most {limit} contacts per call."
        )
    if not contact_ids:
        raise UserInputError.single(
            ["contactIds"], ErrorCode.REQUIRED, "Name at least one contact."
        )
    return decode_ids(contact_ids, "Contact", ["contactIds"])


def _source(count: int) -> MembershipSource:
    return MembershipSource.MANUAL if count == 1 else MembershipSource.BULK


@strawberry.type
class GroupMutations:
    @strawberry.mutation(
        description="Create a group (Nieuwe groep): static, or dynamic with a filter, or "
        "composite with composedOfIds."
    )
    async def create_group(
        self,
        info: Info,
        input: Annotated[CreateGroupInput, strawberry.argument(description="Its settings.")],
    ) -> GroupPayload:
        async def work(session: AsyncSession) -> GroupModel:
            return await service.create_group(session, info.context.user, group_values(input))

        group, errors = await run_mutation(info, work)
        return GroupPayload(group=group, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Change a group's settings: absent = unchanged, null = cleared."
    )
    async def update_group(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the group.")],
        input: Annotated[UpdateGroupInput, strawberry.argument(description="The changes.")],
    ) -> GroupPayload:
        async def work(session: AsyncSession) -> GroupModel:
            group_id = decode_id(id, "Group", ["id"])
            return await service.update_group(
                session, info.context.user, group_id, group_values(input)
            )

        group, errors = await run_mutation(info, work)
        return GroupPayload(group=group, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(description="Delete a group with its memberships and history.")
    async def delete_group(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the group.")],
    ) -> DeletePayload:
        async def work(session: AsyncSession) -> strawberry.ID:
            await service.delete_group(session, info.context.user, decode_id(id, "Group", ["id"]))
            return id

        deleted, errors = await run_mutation(info, work)
        return DeletePayload(deleted_id=deleted, errors=errors)

    @strawberry.mutation(
        description="Freeze a dynamic or composite group's current members into explicit "
        "memberships (source CONVERSION, recorded in the history); the group becomes static."
    )
    async def convert_to_static(
        self,
        info: Info,
        group_id: Annotated[
            strawberry.ID, strawberry.argument(description="A dynamic or composite group.")
        ],
    ) -> GroupPayload:
        async def work(session: AsyncSession) -> GroupModel:
            pk = decode_id(group_id, "Group", ["groupId"])
            return await service.convert_to_static(session, info.context.user, pk)

        group, errors = await run_mutation(info, work)
        return GroupPayload(group=group, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Link contacts to a static group. Existing members are left as they are; "
        "one unknown id refuses the whole call."
    )
    async def add_group_members(
        self,
        info: Info,
        group_id: Annotated[strawberry.ID, strawberry.argument(description="A static group.")],
        contact_ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="The contacts to add.")
        ],
    ) -> MembershipPayload:
        return await _change_members(info, group_id, contact_ids, service.add_members)

    @strawberry.mutation(
        description="Unlink contacts from a static group; the history keeps that they were members."
    )
    async def remove_group_members(
        self,
        info: Info,
        group_id: Annotated[strawberry.ID, strawberry.argument(description="A static group.")],
        contact_ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="The contacts to remove.")
        ],
    ) -> MembershipPayload:
        return await _change_members(info, group_id, contact_ids, service.remove_members)


async def _change_members(
    info: Info,
    group_id: str,
    contact_ids: Sequence[str],
    change: Callable[..., Awaitable[Sequence[MembershipModel | int]]],
) -> MembershipPayload:
    """Add or remove members; the payload lists the links made (none for removals)."""

    async def work(session: AsyncSession) -> tuple[GroupModel, Sequence[MembershipModel | int]]:
        pk = decode_id(group_id, "Group", ["groupId"])
        ids = _contact_ids(info, contact_ids)
        changed = await change(session, info.context.user, pk, ids, _source(len(ids)))
        return await service.get_group(session, pk, field="groupId"), changed

    result, errors = await run_mutation(info, work)
    group, changed = result if result else (None, [])
    return MembershipPayload(
        group=group,  # type: ignore[arg-type]
        memberships=[m for m in changed if isinstance(m, MembershipModel)],  # type: ignore[misc]
        changed_count=len(changed),
        errors=errors,
    )
