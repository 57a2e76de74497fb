"""GraphQL types, queries and mutations for e-mail templates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.email_templates.models import EmailTemplate as EmailTemplateModel
from graphql_api.email_templates.service import (
    create_email_template,
    delete_email_template,
    list_email_templates,
    update_email_template,
)
from graphql_api.graphql.context import Info
from graphql_api.graphql.errors import UserError
from graphql_api.graphql.mutations import given_fields, run_mutation
from graphql_api.graphql.payloads import DeletePayload
from graphql_api.graphql.relay import Node, decode_id, global_id_field, rows_of


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
    is_type_of = rows_of(EmailTemplateModel)


@strawberry.input(description="A new e-mail template.")
class EmailTemplateInput:
    name: str = strawberry.field(description="Unique name, compared case-insensitively.")
    subject: str = strawberry.field(description="Subject line.")
    body: str = strawberry.field(description="Message body.")


@strawberry.input(description="Changes to a template: absent fields stay unchanged.")
class UpdateEmailTemplateInput:
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    subject: str | None = strawberry.field(default=strawberry.UNSET, description="New subject.")
    body: str | None = strawberry.field(default=strawberry.UNSET, description="New body.")


@strawberry.type(description="Result of an e-mail template mutation.")
class EmailTemplatePayload:
    email_template: EmailTemplate | None = strawberry.field(
        description="The template, when the change was made."
    )
    errors: list[UserError] = strawberry.field(
        description="Why the change was refused; empty on success."
    )


@strawberry.type
class EmailTemplateQueries:
    @strawberry.field(description="Every e-mail template, by name.")
    async def email_templates(self, info: Info) -> list[EmailTemplate]:
        return await info.context.db.run(list_email_templates)  # type: ignore[return-value]


@strawberry.type
class EmailTemplateMutations:
    @strawberry.mutation(description="Add an e-mail template.")
    async def create_email_template(
        self,
        info: Info,
        input: Annotated[EmailTemplateInput, strawberry.argument(description="The template.")],
    ) -> EmailTemplatePayload:
        template, errors = await run_mutation(
            info, lambda session: create_email_template(session, given_fields(input))
        )
        return EmailTemplatePayload(email_template=template, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(description="Change an e-mail template; absent fields stay unchanged.")
    async def update_email_template(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The template's id.")],
        input: Annotated[UpdateEmailTemplateInput, strawberry.argument(description="Changes.")],
    ) -> EmailTemplatePayload:
        async def work(session: AsyncSession) -> EmailTemplateModel:
            pk = decode_id(id, "EmailTemplate", ["id"])
            return await update_email_template(session, pk, given_fields(input))

        template, errors = await run_mutation(info, work)
        return EmailTemplatePayload(email_template=template, errors=errors)  # type: ignore[arg-type]

    @strawberry.mutation(description="Delete an e-mail template; refused while a group sends it.")
    async def delete_email_template(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The template's id.")],
    ) -> DeletePayload:
        async def work(session: AsyncSession) -> strawberry.ID:
            await delete_email_template(session, decode_id(id, "EmailTemplate", ["id"]))
            return id

        deleted, errors = await run_mutation(info, work)
        return DeletePayload(deleted_id=deleted, errors=errors)
