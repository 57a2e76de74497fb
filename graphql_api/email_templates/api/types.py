"""GraphQL object types of e-mail templates and of contacts' opt-outs of a group's mail."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.email_templates import models, opt_outs
from graphql_api.graphql_base.enums import described_enum
from graphql_api.graphql_base.nodes import findable
from graphql_api.graphql_base.relay import Node, global_id_field, rows_of, to_global_id


@findable(models.EmailTemplate, "templates.view")
@strawberry.type(
    description="An e-mail template (e-mailtemplate), e.g. the welcome mail of a group."
)
class EmailTemplate(Node):
    id: strawberry.ID = global_id_field("EmailTemplate")
    name: str = strawberry.field(description="Name shown when picking a template.")
    subject: str = strawberry.field(description="Subject line (onderwerp).")
    body: str = strawberry.field(description="Message body (inhoud).")
    created_at: datetime = strawberry.field(description="When the template was created.")
    updated_at: datetime = strawberry.field(description="When the template last changed.")
    is_type_of = rows_of(models.EmailTemplate)


OptOutSourceType = described_enum(
    models.OptOutSource,
    "How an opt-out of a group's mail was made.",
    {
        models.OptOutSource.UNSUBSCRIBE_LINK: "The unsubscribe link in a mail (afmelden).",
        models.OptOutSource.MAILING_LIST: "Unsubscribed at the mailing list the group is "
        "kept in sync with.",
        models.OptOutSource.PORTAL: "By the contact, on the customer portal.",
        models.OptOutSource.STAFF: "By staff, at the contact's request.",
    },
    name="MailOptOutSource",
)


@strawberry.type(
    description="An opt-out of a group's mail (afgemeld): the group's mails and its mailing "
    "list leave the contact out until it is withdrawn."
)
class MailOptOut:
    """Resolved from the domain's ``OptOut``, which every field takes as its parent."""

    @strawberry.field(description="The group's global id.")
    def group_id(self, root: strawberry.Parent[opt_outs.OptOut]) -> strawberry.ID:
        return to_global_id("Group", root.group_id)

    @strawberry.field(description="The group's name (naam).")
    def group_name(self, root: strawberry.Parent[opt_outs.OptOut]) -> str:
        return root.group_name

    @strawberry.field(description="How the contact opted out.")
    def source(self, root: strawberry.Parent[opt_outs.OptOut]) -> OptOutSourceType:  # type: ignore[valid-type]
        return root.source

    @strawberry.field(description="When the contact opted out.")
    def since(self, root: strawberry.Parent[opt_outs.OptOut]) -> datetime:
        return root.since
