"""GraphQL object types of groups: ``Group``, ``Membership``, ``MembershipEvent`` and
the enums they use."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import Select, select

from graphql_api.contacts import models as contact_models
from graphql_api.email_templates import models as template_models
from graphql_api.graphql_base.compiled import FromColumns, PageOf, Reference, compiled
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.cost import READS_MEMBERSHIP
from graphql_api.graphql_base.enums import described_enum
from graphql_api.graphql_base.nodes import findable
from graphql_api.graphql_base.relay import (
    After,
    Connection,
    First,
    Node,
    global_id_field,
    paginate,
    query_id,
    rows_of,
)
from graphql_api.graphql_base.text_inputs import query_search
from graphql_api.groups import models
from graphql_api.groups.api.filters import ContactFilter, filter_from_domain
from graphql_api.groups.api.loaders import (
    load_has_member,
    load_links,
    load_member_counts,
    load_used_by,
)
from graphql_api.groups.filters import stored_filter
from graphql_api.groups.membership_reads import members_of, membership_path
from graphql_api.groups.models import (
    CompositionMode,
    GroupKind,
    LinkRole,
    MembershipAction,
    MembershipSource,
)
from graphql_api.kernel.pagination import Ordering
from graphql_api.kernel.repository import load_by_id
from graphql_api.users import models as user_models

if TYPE_CHECKING:
    from graphql_api.contacts.api.types import Contact
    from graphql_api.email_templates.api.types import EmailTemplate
    from graphql_api.roles.api.types import Role
    from graphql_api.users.api.types import User

ContactRef = Annotated["Contact", strawberry.lazy("graphql_api.contacts.api.types")]
EmailTemplateRef = Annotated[
    "EmailTemplate", strawberry.lazy("graphql_api.email_templates.api.types")
]
RoleRef = Annotated["Role", strawberry.lazy("graphql_api.roles.api.types")]
UserRef = Annotated["User", strawberry.lazy("graphql_api.users.api.types")]

GroupKindType = described_enum(
    GroupKind,
    "What decides a group's members.",
    {
        GroupKind.STATIC: "Statische groep: explicit members, added and removed by hand.",
        GroupKind.DYNAMIC: "Dynamische groep: the contacts matching a stored filter.",
        GroupKind.COMPOSITE: "Samengestelde groep: built from other groups.",
    },
)
MembershipSourceType = described_enum(
    MembershipSource,
    "Through which path a link was made.",
    {
        MembershipSource.MANUAL: "One contact added through the API.",
        MembershipSource.BULK: "Several contacts added in one call.",
        MembershipSource.PORTAL: "Added on the portal.",
        MembershipSource.API: "Added by another system.",
        MembershipSource.IMPORT: "Loaded by an import (or the demo data).",
        MembershipSource.CONVERSION: "Kept when a derived group became static.",
        MembershipSource.DERIVED: "Entered or left a dynamic or composite group through "
        "another change (see the history's cause).",
    },
)
MembershipActionType = described_enum(
    MembershipAction,
    "Whether a contact was added or removed.",
    {
        MembershipAction.ADDED: "The contact joined the group.",
        MembershipAction.REMOVED: "The contact left the group.",
    },
)
CompositionModeType = described_enum(
    CompositionMode,
    "How a composite combines its groups.",
    {
        CompositionMode.ANY: "Member of at least one of the groups (union).",
        CompositionMode.ALL: "Member of every one of the groups (intersection).",
    },
)

MEMBERS_BY_ID = Ordering((contact_models.Contact.id,))
HISTORY_NEWEST_FIRST = Ordering((models.MembershipEvent.id,), descending=True)


def _members(group: models.Group, arguments: Mapping[str, Any]) -> tuple[Select[Any], Ordering]:
    """``members``: the statement of a group's members, and their order."""
    term = query_search(arguments.get("search"))
    return members_of(group.id, group.kind, term), MEMBERS_BY_ID


def _history(group: models.Group, _: Mapping[str, Any]) -> tuple[Select[Any], Ordering]:
    """``history``: the statement of a group's membership events, and their order."""
    query = select(models.MembershipEvent).where(models.MembershipEvent.group_id == group.id)
    return query, HISTORY_NEWEST_FIRST


def _user(key: str) -> dict[str, Any]:
    return compiled(Reference(user_models.User, key))


@strawberry.type(description="A contact explicitly linked to a static group (contactkoppeling).")
class Membership:
    member_since: datetime = strawberry.field(
        description="When the contact was linked (lid sinds)."
    )
    source: MembershipSourceType = strawberry.field(description="How the link was made.")

    @strawberry.field(
        description="The static group.", metadata=compiled(Reference(models.Group, "group_id"))
    )
    async def group(self, root: strawberry.Parent[models.Membership], info: Info) -> Group:
        return await info.context.row(models.Group, root.group_id)

    @strawberry.field(
        description="The linked contact.",
        metadata=compiled(Reference(contact_models.Contact, "contact_id")),
    )
    async def contact(self, root: strawberry.Parent[models.Membership], info: Info) -> ContactRef:
        return await info.context.row(contact_models.Contact, root.contact_id)

    @strawberry.field(
        description="Who made the link; null when the user no longer exists.",
        metadata=_user("added_by_id"),
    )
    async def added_by(
        self, root: strawberry.Parent[models.Membership], info: Info
    ) -> UserRef | None:
        return await info.context.row(user_models.User, root.added_by_id)


@findable(models.MembershipEvent, "groups.view")
@strawberry.type(description="One entry of a group's membership history; never changed or removed.")
class MembershipEvent(Node):
    id: strawberry.ID = global_id_field("MembershipEvent")
    action: MembershipActionType = strawberry.field(description="ADDED or REMOVED.")
    source: MembershipSourceType = strawberry.field(description="Through which path.")
    occurred_at: datetime = strawberry.field(description="When it happened.")
    cause: str | None = strawberry.field(
        description="For source DERIVED: the change that made the contact enter or leave, "
        'e.g. "contact 17\'s postal_code changed".'
    )
    is_type_of = rows_of(models.MembershipEvent)

    @strawberry.field(
        description="The contact added or removed.",
        metadata=compiled(Reference(contact_models.Contact, "contact_id")),
    )
    async def contact(
        self, root: strawberry.Parent[models.MembershipEvent], info: Info
    ) -> ContactRef:
        return await info.context.row(contact_models.Contact, root.contact_id)

    @strawberry.field(description="Who did it; null when unknown.", metadata=_user("actor_id"))
    async def actor(
        self, root: strawberry.Parent[models.MembershipEvent], info: Info
    ) -> UserRef | None:
        return await info.context.row(user_models.User, root.actor_id)


@findable(models.Group, "groups.view")
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
    is_type_of = rows_of(models.Group)

    @strawberry.field(
        description="The groups this composite is built from (Samengesteld uit), as listed."
    )
    async def composed_of(self, root: strawberry.Parent[models.Group], info: Info) -> list[Group]:
        return (await info.context.loader(load_links).load(root.id))[LinkRole.INCLUDE]

    @strawberry.field(description="Groups whose members are left out of this composite.")
    async def excluded_groups(
        self, root: strawberry.Parent[models.Group], info: Info
    ) -> list[Group]:
        return (await info.context.loader(load_links).load(root.id))[LinkRole.EXCLUDE]

    @strawberry.field(description="A dynamic group's filter, as it was written; null otherwise.")
    def filter(self, root: strawberry.Parent[models.Group], info: Info) -> ContactFilter | None:
        if root.filter is None:
            return None
        return filter_from_domain(
            stored_filter(root.name, root.filter, info.context.filter_fields)[0]
        )

    @strawberry.field(
        description="Groups that include or exclude this group, or name it in a memberOf "
        "filter; while there are any, it cannot be deleted."
    )
    async def used_by(self, root: strawberry.Parent[models.Group], info: Info) -> list[Group]:
        return await info.context.loader(load_used_by).load(root.id)

    @strawberry.field(
        description="Why a contact is a member: this group, then each group down to the static "
        "group or dynamic filter that holds the contact. Null when it is not a member.",
        metadata=READS_MEMBERSHIP,
    )
    async def membership_path(
        self,
        root: strawberry.Parent[models.Group],
        info: Info,
        contact_id: Annotated[strawberry.ID, strawberry.argument(description="A contact id.")],
    ) -> list[Group] | None:
        contact_pk = query_id(contact_id, "Contact")
        path = await info.context.db.run(
            lambda session: membership_path(session, root.id, contact_pk)
        )
        if path is None:
            return None
        return await info.context.loader(load_by_id(models.Group)).load_many(path)

    @strawberry.field(
        description="Owner and point of contact (Verantwoordelijke).",
        metadata=_user("responsible_id"),
    )
    async def responsible(
        self, root: strawberry.Parent[models.Group], info: Info
    ) -> UserRef | None:
        return await info.context.row(user_models.User, root.responsible_id)

    @strawberry.field(
        description="Who created the group (Gemaakt door).", metadata=_user("created_by_id")
    )
    async def created_by(self, root: strawberry.Parent[models.Group], info: Info) -> UserRef | None:
        return await info.context.row(user_models.User, root.created_by_id)

    @strawberry.field(
        description="The template sent to new members when emailOnNewMember is on.",
        metadata=compiled(Reference(template_models.EmailTemplate, "new_member_email_template_id")),
    )
    async def new_member_email_template(
        self, root: strawberry.Parent[models.Group], info: Info
    ) -> EmailTemplateRef | None:
        template_id = root.new_member_email_template_id
        return await info.context.row(template_models.EmailTemplate, template_id)

    @strawberry.field(
        description="Role members get in the neighbourhood approach (Rol in buurtaanpak)."
    )
    def neighbourhood_role(
        self, root: strawberry.Parent[models.Group], info: Info
    ) -> RoleRef | None:
        if root.neighbourhood_role is None:
            return None
        return info.context.roles.get(root.neighbourhood_role)  # type: ignore[return-value]

    @strawberry.field(
        description="The members (leden), oldest contact first.",
        metadata={
            **READS_MEMBERSHIP,
            **compiled(PageOf(contact_models.Contact, _members, parent_columns=("kind",))),
        },
    )
    async def members(
        self,
        root: strawberry.Parent[models.Group],
        info: Info,
        first: First = None,
        after: After = None,
        search: Annotated[
            str | None,
            strawberry.argument(description="Case-insensitive text in name, e-mail or city."),
        ] = None,
    ) -> Connection[ContactRef]:
        query, ordering = _members(root, {"search": search})
        return await paginate(
            info, query, ordering, first=first, after=after, key_of=lambda c: (c.id,)
        )

    @strawberry.field(
        description="Number of members; one aggregate query for all groups asked.",
        metadata={
            **READS_MEMBERSHIP,
            # The count each write keeps exact, read with the group's row.
            **compiled(FromColumns(("member_count",), attrgetter("member_count"))),
        },
    )
    async def member_count(self, root: strawberry.Parent[models.Group], info: Info) -> int:
        return await info.context.loader(load_member_counts).load(root.id)

    @strawberry.field(
        description="Whether the contact is a member of this group.", metadata=READS_MEMBERSHIP
    )
    async def has_member(
        self,
        root: strawberry.Parent[models.Group],
        info: Info,
        contact_id: Annotated[strawberry.ID, strawberry.argument(description="A contact id.")],
    ) -> bool:
        pair = (root.id, query_id(contact_id, "Contact"))
        return await info.context.loader(load_has_member).load(pair)

    @strawberry.field(
        description="Every add and remove of a member, newest first.",
        metadata=compiled(PageOf(models.MembershipEvent, _history)),
    )
    async def history(
        self,
        root: strawberry.Parent[models.Group],
        info: Info,
        first: First = None,
        after: After = None,
    ) -> Connection[MembershipEvent]:
        query, ordering = _history(root, {})
        return await paginate(
            info, query, ordering, first=first, after=after, key_of=lambda e: (e.id,)
        )
