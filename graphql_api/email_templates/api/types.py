"""GraphQL object type of e-mail templates."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.email_templates import models
from graphql_api.graphql_base.nodes import findable
from graphql_api.graphql_base.relay import Node, global_id_field, rows_of


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
