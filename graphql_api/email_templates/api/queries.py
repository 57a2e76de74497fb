"""GraphQL queries of e-mail templates."""

from __future__ import annotations

import strawberry

from graphql_api.email_templates.api.types import EmailTemplate
from graphql_api.email_templates.service import list_email_templates
from graphql_api.graphql_base.access import guarded_field
from graphql_api.graphql_base.context import Info


@strawberry.type
class EmailTemplateQueries:
    @guarded_field("templates.view", "Every e-mail template, by name.")
    async def email_templates(self, info: Info) -> list[EmailTemplate]:
        return await info.context.db.run(list_email_templates)  # type: ignore[return-value]
