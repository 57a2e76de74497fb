"""GraphQL types of the portal schema, and the portal account as staff see it."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from graphql_api.graphql_base.enums import described_enum
from graphql_api.graphql_base.relay import to_global_id
from graphql_api.portal import groups as portal_groups
from graphql_api.portal.models import AccountStatus

if TYPE_CHECKING:
    from graphql_api.email_templates.api.types import MailOptOut

MailOptOutRef = Annotated["MailOptOut", strawberry.lazy("graphql_api.email_templates.api.types")]

AccountStatusType = described_enum(
    AccountStatus,
    "Where a contact's portal account stands.",
    {
        AccountStatus.INVITED: "Invited; the invitation is not accepted yet.",
        AccountStatus.ACTIVE: "The contact chose a password and can log in.",
        AccountStatus.DISABLED: "Shut out by staff; sessions and links no longer work.",
    },
    name="PortalAccountStatus",
)


@strawberry.type(description="A group shown on the portal (Zichtbaar op portaal).")
class PortalGroup:
    entry: strawberry.Private[portal_groups.PortalGroup]

    @strawberry.field(description="The group's global id, as joinGroup and leaveGroup take it.")
    def id(self) -> strawberry.ID:
        return to_global_id("Group", self.entry.group.id)

    @strawberry.field(description="Name (naam).")
    def name(self) -> str:
        return self.entry.group.name

    @strawberry.field(description="What the group is about (omschrijving).")
    def description(self) -> str | None:
        return self.entry.group.description

    @strawberry.field(description="First day of the group (begindatum), if set.")
    def start_date(self) -> date | None:
        return self.entry.group.start_date

    @strawberry.field(description="Last day of the group (einddatum), if set.")
    def end_date(self) -> date | None:
        return self.entry.group.end_date

    @strawberry.field(description="Whether you are in the group, also through a rule.")
    def is_member(self) -> bool:
        return self.entry.is_member

    @strawberry.field(description="Whether you may join or leave it here (Veranderen op portaal).")
    def can_change(self) -> bool:
        return self.entry.can_change


@strawberry.type(description="You, the contact this session belongs to.")
class PortalMe:
    display_name: str = strawberry.field(description="Your name as the cooperative shows it.")
    email: str | None = strawberry.field(description="Your e-mail address.")
    groups: list[PortalGroup] = strawberry.field(
        description="The groups you are in that are shown on the portal, by name."
    )
    mail_opt_outs: list[MailOptOutRef] = strawberry.field(
        description="The groups whose mail you opted out of (afgemeld), by name."
    )


@strawberry.type(description="A contact's portal account, as staff see it.")
class PortalAccount:
    status: AccountStatusType = strawberry.field(description="INVITED, ACTIVE or DISABLED.")
    email: str = strawberry.field(description="The login.")
    invited_at: datetime = strawberry.field(description="When the last invitation was made.")
    activated_at: datetime | None = strawberry.field(
        description="When the contact accepted the invitation."
    )
    last_login_at: datetime | None = strawberry.field(description="When they last logged in.")
