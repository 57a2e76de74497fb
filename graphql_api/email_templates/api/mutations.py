"""GraphQL mutations of e-mail templates, with their payload."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.email_templates.api.inputs import EmailTemplateInput, UpdateEmailTemplateInput
from graphql_api.email_templates.api.types import EmailTemplate, MailOptOut
from graphql_api.email_templates.opt_outs import OptOut, opt_out_for_contact, withdraw_for_contact
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
OPT_OUT_ARGUMENTS = ErrorPaths({"contact_id": "contactId", "group_id": "groupId"}, input=None)
ContactId = Annotated[strawberry.ID, strawberry.argument(description="The contact's id.")]
GroupId = Annotated[strawberry.ID, strawberry.argument(description="The group's id.")]


@strawberry.type(description="Result of recording or withdrawing a contact's opt-out.")
class MailOptOutsPayload:
    mail_opt_outs: list[MailOptOut] | None = strawberry.field(
        default=None, description="The contact's opt-outs now, by group name."
    )
    errors: list[UserError] = strawberry.field(
        description="Why the change was refused; empty on success."
    )


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

    @strawberry.mutation(
        description=needing(
            "contacts.manage",
            "Opt a contact out of a group's mail at their request (afmelden; source STAFF): "
            "its group mails and mailing list leave them out. Twice is once.",
        )
    )
    async def opt_contact_out_of_mail(
        self, info: Info, contact_id: ContactId, group_id: GroupId
    ) -> MailOptOutsPayload:
        return await _opt_out_change(info, contact_id, group_id, opt_out_for_contact)

    @strawberry.mutation(
        description=needing(
            "contacts.manage", "Withdraw a contact's opt-out of a group's mail at their request."
        )
    )
    async def withdraw_contact_mail_opt_out(
        self, info: Info, contact_id: ContactId, group_id: GroupId
    ) -> MailOptOutsPayload:
        return await _opt_out_change(info, contact_id, group_id, withdraw_for_contact)


async def _opt_out_change(
    info: Info,
    contact_id: str,
    group_id: str,
    change: Callable[..., Awaitable[list[OptOut]]],
) -> MailOptOutsPayload:
    async def work(session: AsyncSession) -> dict[str, Any]:
        contact = decode_id(contact_id, "Contact", ["contact_id"])
        group = decode_id(group_id, "Group", ["group_id"])
        return {"mail_opt_outs": await change(session, info.context.principal, contact, group)}

    return await run_mutation(info, MailOptOutsPayload, OPT_OUT_ARGUMENTS, work)  # type: ignore[arg-type]
