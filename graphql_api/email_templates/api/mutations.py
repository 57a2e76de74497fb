"""GraphQL mutations of e-mail templates, with their payload."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.email_templates.api.inputs import EmailTemplateInput, UpdateEmailTemplateInput
from graphql_api.email_templates.api.types import EmailTemplate
from graphql_api.email_templates.service import (
    create_email_template,
    delete_email_template,
    update_email_template,
)
from graphql_api.graphql_base.access import needing
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import UserError
from graphql_api.graphql_base.mutations import NO_ARGUMENTS, ErrorPaths, given_fields, run_mutation
from graphql_api.graphql_base.payloads import DeletePayload
from graphql_api.graphql_base.relay import decode_id

TEMPLATE_BY_ID = ErrorPaths({"template_id": "id"})
"""``updateEmailTemplate(id:, input:)`` and ``deleteEmailTemplate(id:)``."""


@strawberry.type(description="Result of an e-mail template mutation.")
class EmailTemplatePayload:
    email_template: EmailTemplate | None = strawberry.field(
        default=None, description="The template, when the change was made."
    )
    errors: list[UserError] = strawberry.field(
        description="Why the change was refused; empty on success."
    )


@strawberry.type
class EmailTemplateMutations:
    @strawberry.mutation(description=needing("templates.manage", "Add an e-mail template."))
    async def create_email_template(
        self,
        info: Info,
        input: Annotated[EmailTemplateInput, strawberry.argument(description="The template.")],
    ) -> EmailTemplatePayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            return {
                "email_template": await create_email_template(
                    session, info.context.principal, given_fields(input)
                )
            }

        return await run_mutation(info, EmailTemplatePayload, NO_ARGUMENTS, work)

    @strawberry.mutation(
        description=needing(
            "templates.manage", "Change an e-mail template; absent fields stay unchanged."
        )
    )
    async def update_email_template(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The template's id.")],
        input: Annotated[UpdateEmailTemplateInput, strawberry.argument(description="Changes.")],
    ) -> EmailTemplatePayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(id, "EmailTemplate", ["template_id"])
            return {
                "email_template": await update_email_template(
                    session, info.context.principal, pk, given_fields(input)
                )
            }

        return await run_mutation(info, EmailTemplatePayload, TEMPLATE_BY_ID, work)

    @strawberry.mutation(
        description=needing(
            "templates.manage", "Delete an e-mail template; refused while a group sends it."
        )
    )
    async def delete_email_template(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The template's id.")],
    ) -> DeletePayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(id, "EmailTemplate", ["template_id"])
            await delete_email_template(session, info.context.principal, pk)
            return {"deleted_id": id}

        return await run_mutation(info, DeletePayload, TEMPLATE_BY_ID, work)
