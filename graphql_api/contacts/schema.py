"""GraphQL types, queries and mutations for contacts."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact as ContactModel
from graphql_api.contacts.models import ContactKind
from graphql_api.contacts.service import contact_search, create_contact, update_contact
from graphql_api.errors import UserInputError
from graphql_api.graphql.context import Info
from graphql_api.graphql.errors import PublicError, UserError
from graphql_api.graphql.mutations import given_fields, run_mutation
from graphql_api.graphql.relay import (
    After,
    Connection,
    First,
    Node,
    decode_id,
    global_id_field,
    paginate,
    query_id,
    rows_of,
)
from graphql_api.groups.filter_schema import ContactFilterInput, filter_to_domain
from graphql_api.groups.loaders import (
    load_groups_of_contacts,
    load_memberships,
    load_visible_memberships,
)
from graphql_api.groups.membership import filter_contacts
from graphql_api.groups.models import GroupKind
from graphql_api.pagination import Ordering
from graphql_api.repository import load_by_id

if TYPE_CHECKING:
    from graphql_api.groups.schema import Group, Membership
    from graphql_api.roles.schema import Role

GroupRef = Annotated["Group", strawberry.lazy("graphql_api.groups.schema")]
MembershipRef = Annotated["Membership", strawberry.lazy("graphql_api.groups.schema")]
RoleRef = Annotated["Role", strawberry.lazy("graphql_api.roles.schema")]

ContactKindType = strawberry.enum(
    ContactKind, name="ContactKind", description="Person (persoon) or organisation (organisatie)."
)

CONTACTS_BY_ID = Ordering((ContactModel.id,))


@strawberry.type(description="Where a contact shows its groups (Zichtbaar bij contact).")
class VisibleGroups:
    contact_id: strawberry.Private[int]

    @strawberry.field(
        description="Static groups with showOnContact, with memberSince: shown in the contact's "
        "side panel (rechterharmonica)."
    )
    async def static(self, info: Info) -> list[MembershipRef]:
        return await info.context.loader(load_visible_memberships).load(self.contact_id)

    @strawberry.field(
        description="Dynamic and composite groups with showOnContact that the contact is in: "
        "shown with the basic contact details (basis contactgegevens)."
    )
    async def derived(self, info: Info) -> list[GroupRef]:
        groups = await info.context.loader(load_groups_of_contacts).load(self.contact_id)
        return [g for g in groups if g.show_on_contact and g.kind is not GroupKind.STATIC]


@strawberry.type(description="A person or organisation in the CRM (contact).")
class Contact(Node):
    id: strawberry.ID = global_id_field("Contact")
    kind: ContactKindType = strawberry.field(description="Person or organisation.")
    display_name: str = strawberry.field(
        description="Organisation name for organisations, first and last name for persons."
    )
    first_name: str | None = strawberry.field(description="First name (voornaam).")
    last_name: str | None = strawberry.field(description="Last name (achternaam).")
    organisation_name: str | None = strawberry.field(
        description="Organisation name (organisatienaam)."
    )
    email: str | None = strawberry.field(description="E-mail address (e-mailadres).")
    phone: str | None = strawberry.field(description="Telephone number (telefoonnummer).")
    street: str | None = strawberry.field(description="Street and number (straat).")
    postal_code: str | None = strawberry.field(description="Postal code (postcode).")
    city: str | None = strawberry.field(description="City (plaats).")
    created_at: datetime = strawberry.field(description="When the contact was created.")
    is_type_of = rows_of(ContactModel)

    @strawberry.field(
        description="Explicit links to static groups (contactkoppelingen), oldest first."
    )
    async def memberships(
        self, root: strawberry.Parent[ContactModel], info: Info
    ) -> list[MembershipRef]:
        return await info.context.loader(load_memberships).load(root.id)

    @strawberry.field(description="Every group the contact is in, by name.")
    async def groups(self, root: strawberry.Parent[ContactModel], info: Info) -> list[GroupRef]:
        return await info.context.loader(load_groups_of_contacts).load(root.id)

    @strawberry.field(
        description="Roles in the neighbourhood approach (Rol in buurtaanpak) of the groups "
        "the contact is in."
    )
    async def neighbourhood_roles(
        self, root: strawberry.Parent[ContactModel], info: Info
    ) -> list[RoleRef]:
        groups = await info.context.loader(load_groups_of_contacts).load(root.id)
        keys = dict.fromkeys(g.neighbourhood_role for g in groups if g.neighbourhood_role)
        return [info.context.roles[key] for key in keys if key in info.context.roles]

    @strawberry.field(description="Groups that show on this contact (Zichtbaar bij contact).")
    def visible_groups(self, root: strawberry.Parent[ContactModel]) -> VisibleGroups:
        return VisibleGroups(contact_id=root.id)


@strawberry.input(description="A contact's fields. On update, absent fields stay unchanged.")
class ContactInput:
    kind: ContactKindType | None = strawberry.field(
        default=strawberry.UNSET, description="PERSON (default) or ORGANISATION."
    )
    first_name: str | None = strawberry.field(default=strawberry.UNSET, description="First name.")
    last_name: str | None = strawberry.field(default=strawberry.UNSET, description="Last name.")
    organisation_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Organisation name; required for organisations."
    )
    email: str | None = strawberry.field(default=strawberry.UNSET, description="E-mail address.")
    phone: str | None = strawberry.field(default=strawberry.UNSET, description="Phone number.")
    street: str | None = strawberry.field(default=strawberry.UNSET, description="Street.")
    postal_code: str | None = strawberry.field(default=strawberry.UNSET, description="Postal code.")
    city: str | None = strawberry.field(default=strawberry.UNSET, description="City.")


@strawberry.type(description="Result of a contact mutation.")
class ContactPayload:
    contact: Contact | None = strawberry.field(description="The contact, when the change was made.")
    errors: list[UserError] = strawberry.field(
        description="Why the change was refused; empty on success."
    )


async def _filtered(info: Info, query: Any, filter: ContactFilterInput) -> Any:
    try:
        tree = filter_to_domain(filter)
        return await info.context.db.run(lambda session: filter_contacts(session, query, tree))
    except UserInputError as error:
        details = " ".join(f"{'.'.join(p.field)}: {p.message}" for p in error.problems)
        raise PublicError(f"Invalid filter: {details}") from error


@strawberry.type
class ContactQueries:
    @strawberry.field(description="One contact by id; null when it does not exist.")
    async def contact(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the contact.")],
    ) -> Contact | None:
        return await info.context.loader(load_by_id(ContactModel)).load(query_id(id, "Contact"))

    @strawberry.field(
        description="Contacts, oldest first, optionally narrowed by a filter (to preview who "
        "a dynamic group would hold) and a search."
    )
    async def contacts(
        self,
        info: Info,
        filter: Annotated[
            ContactFilterInput | None,
            strawberry.argument(description="Only contacts matching this dynamic-group filter."),
        ] = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Case-insensitive text in name, e-mail, postal code or city."
            ),
        ] = None,
        first: First = None,
        after: After = None,
    ) -> Connection[Contact]:
        query = select(ContactModel)
        if filter is not None:
            query = await _filtered(info, query, filter)
        if search and search.strip():
            query = query.where(contact_search(search))
        return await paginate(
            info, query, CONTACTS_BY_ID, first=first, after=after, key_of=lambda c: (c.id,)
        )


@strawberry.type
class ContactMutations:
    @strawberry.mutation(description="Add a contact.")
    async def create_contact(
        self,
        info: Info,
        input: Annotated[ContactInput, strawberry.argument(description="The new contact.")],
    ) -> ContactPayload:
        contact, errors = await run_mutation(
            info, lambda session: create_contact(session, given_fields(input))
        )
        return ContactPayload(contact=contact, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(description="Change a contact's fields; absent fields stay unchanged.")
    async def update_contact(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the contact.")],
        input: Annotated[ContactInput, strawberry.argument(description="The fields to change.")],
    ) -> ContactPayload:
        async def work(session: AsyncSession) -> ContactModel:
            return await update_contact(
                session, decode_id(id, "Contact", ["id"]), given_fields(input)
            )

        contact, errors = await run_mutation(info, work)
        return ContactPayload(contact=contact, errors=errors)  # type: ignore[arg-type]
