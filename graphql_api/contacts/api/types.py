"""GraphQL object types of contacts: ``Contact`` and where it shows its groups."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from graphql_api.contacts import models
from graphql_api.contacts.api.loaders import (
    load_groups_of_contacts,
    load_mail_opt_outs,
    load_memberships,
    load_visible_memberships,
)
from graphql_api.contacts.models import ContactKind
from graphql_api.graphql_base.access import guarded_field
from graphql_api.graphql_base.compiled import Children, FromColumns, compiled
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.cost import READS_MEMBERSHIP
from graphql_api.graphql_base.enums import described_enum
from graphql_api.graphql_base.nodes import findable
from graphql_api.graphql_base.relay import Node, global_id_field, rows_of
from graphql_api.groups.models import GroupKind
from graphql_api.groups.models import Membership as MembershipRow
from graphql_api.portal.accounts import accounts_of_contacts

if TYPE_CHECKING:
    from graphql_api.email_templates.api.types import MailOptOut
    from graphql_api.groups.api.types import Group, Membership
    from graphql_api.portal.api.types import PortalAccount
    from graphql_api.roles.api.types import Role

GroupRef = Annotated["Group", strawberry.lazy("graphql_api.groups.api.types")]
MembershipRef = Annotated["Membership", strawberry.lazy("graphql_api.groups.api.types")]
RoleRef = Annotated["Role", strawberry.lazy("graphql_api.roles.api.types")]
MailOptOutRef = Annotated["MailOptOut", strawberry.lazy("graphql_api.email_templates.api.types")]
PortalAccountRef = Annotated["PortalAccount", strawberry.lazy("graphql_api.portal.api.types")]

DISPLAY_NAME_COLUMNS = ("id", "kind", "first_name", "last_name", "organisation_name", "email")
"""What ``Contact.display_name`` reads."""

ContactKindType = described_enum(
    ContactKind,
    "Person or organisation.",
    {ContactKind.PERSON: "A person (persoon).", ContactKind.ORGANISATION: "An organisation."},
)


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
        "shown with the basic contact details (basis contactgegevens).",
        metadata=READS_MEMBERSHIP,
    )
    async def derived(self, info: Info) -> list[GroupRef]:
        groups = await info.context.loader(load_groups_of_contacts).load(self.contact_id)
        return [g for g in groups if g.show_on_contact and g.kind is not GroupKind.STATIC]


@findable(models.Contact, "contacts.view")
@strawberry.type(description="A person or organisation in the CRM (contact).")
class Contact(Node):
    id: strawberry.ID = global_id_field("Contact")
    kind: ContactKindType = strawberry.field(description="Person or organisation.")
    display_name: str = strawberry.field(
        description="Organisation name for organisations, first and last name for persons.",
        metadata=compiled(FromColumns(DISPLAY_NAME_COLUMNS, models.Contact.display_name.fget)),
    )
    first_name: str | None = strawberry.field(description="First name (voornaam).")
    last_name: str | None = strawberry.field(description="Last name (achternaam).")
    organisation_name: str | None = strawberry.field(
        description="Organisation name (organisatienaam)."
    )
    email: str | None = guarded_field("contacts.view", "E-mail address (e-mailadres).")
    phone: str | None = guarded_field("contacts.view", "Telephone number (telefoonnummer).")
    street: str | None = guarded_field("contacts.view", "Street and number (straat).")
    postal_code: str | None = guarded_field("contacts.view", "Postal code (postcode).")
    city: str | None = guarded_field("contacts.view", "City (plaats).")
    external_id: str | None = guarded_field(
        "contacts.view",
        "The contact's number in the system it was imported from (Econobis's \"#\"): "
        "what an import finds it by. Unique.",
    )
    created_at: datetime = strawberry.field(description="When the contact was created.")
    is_type_of = rows_of(models.Contact)

    @strawberry.field(
        description="Explicit links to static groups (contactkoppelingen), oldest first.",
        metadata=compiled(Children(MembershipRow, "contact_id", ("member_since", "group_id"))),
    )
    async def memberships(
        self, root: strawberry.Parent[models.Contact], info: Info
    ) -> list[MembershipRef]:
        return await info.context.loader(load_memberships).load(root.id)

    @strawberry.field(
        description="Every group the contact is in, by name.", metadata=READS_MEMBERSHIP
    )
    async def groups(self, root: strawberry.Parent[models.Contact], info: Info) -> list[GroupRef]:
        return await info.context.loader(load_groups_of_contacts).load(root.id)

    @strawberry.field(
        description="Roles in the neighbourhood approach (Rol in buurtaanpak) of the groups "
        "the contact is in.",
        metadata=READS_MEMBERSHIP,
    )
    async def neighbourhood_roles(
        self, root: strawberry.Parent[models.Contact], info: Info
    ) -> list[RoleRef]:
        groups = await info.context.loader(load_groups_of_contacts).load(root.id)
        keys = dict.fromkeys(g.neighbourhood_role for g in groups if g.neighbourhood_role)
        return [info.context.roles[key] for key in keys if key in info.context.roles]

    @guarded_field(
        "contacts.view", "The contact's portal account (klantenportaal); null when never invited."
    )
    async def portal_account(
        self, root: strawberry.Parent[models.Contact], info: Info
    ) -> PortalAccountRef | None:
        return await info.context.loader(accounts_of_contacts).load(root.id)

    @guarded_field(
        "contacts.view",
        "The groups whose mail the contact opted out of (afgemeld), by name: their group "
        "mails and mailing lists leave the contact out.",
    )
    async def mail_opt_outs(
        self, root: strawberry.Parent[models.Contact], info: Info
    ) -> list[MailOptOutRef]:
        return await info.context.loader(load_mail_opt_outs).load(root.id)

    @strawberry.field(description="Groups that show on this contact (Zichtbaar bij contact).")
    def visible_groups(self, root: strawberry.Parent[models.Contact]) -> VisibleGroups:
        return VisibleGroups(contact_id=root.id)
