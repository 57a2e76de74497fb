"""GraphQL mutations of contacts, with their payload."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.api.inputs import ContactInput
from graphql_api.contacts.api.types import Contact
from graphql_api.contacts.service import create_contact, update_contact
from graphql_api.graphql_base.access import needing
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import UserError
from graphql_api.graphql_base.mutations import NO_ARGUMENTS, ErrorPaths, given_fields, run_mutation
from graphql_api.graphql_base.relay import decode_id

CONTACT_BY_ID = ErrorPaths({"contact_id": "id"})
"""``updateContact(id:, input:)``."""


@strawberry.type(description="Result of a contact mutation.")
class ContactPayload:
    contact: Contact | None = strawberry.field(
        default=None, description="The contact, when the change was made."
    )
    errors: list[UserError] = strawberry.field(
        description="Why the change was refused; empty on success."
    )


@strawberry.type
class ContactMutations:
    @strawberry.mutation(description=needing("contacts.manage", "Add a contact."))
    async def create_contact(
        self,
        info: Info,
        input: Annotated[ContactInput, strawberry.argument(description="The new contact.")],
    ) -> ContactPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            return {
                "contact": await create_contact(
                    session, info.context.principal, given_fields(input)
                )
            }

        return await run_mutation(info, ContactPayload, NO_ARGUMENTS, work)

    @strawberry.mutation(
        description=needing(
            "contacts.manage", "Change a contact's fields; absent fields stay unchanged."
        )
    )
    async def update_contact(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the contact.")],
        input: Annotated[ContactInput, strawberry.argument(description="The fields to change.")],
    ) -> ContactPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            contact_id = decode_id(id, "Contact", ["contact_id"])
            return {
                "contact": await update_contact(
                    session, info.context.principal, contact_id, given_fields(input)
                )
            }

        return await run_mutation(info, ContactPayload, CONTACT_BY_ID, work)
