"""What staff do with the portal: invite and disable contacts, and erase a contact."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.graphql_base.access import needing
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import UserError
from graphql_api.graphql_base.mutations import ErrorPaths, run_mutation
from graphql_api.graphql_base.relay import decode_id
from graphql_api.portal import accounts, privacy
from graphql_api.portal.api.types import PortalAccount

CONTACT_ARGUMENT = ErrorPaths({"contact_id": "contactId"}, input=None)
ContactId = Annotated[strawberry.ID, strawberry.argument(description="The contact's id.")]


@strawberry.type(description="Result of inviting a contact to the portal.")
class InvitePortalUserPayload:
    portal_account: PortalAccount | None = strawberry.field(
        default=None, description="The account, now INVITED."
    )
    token: str | None = strawberry.field(
        default=None,
        description="The single-use invitation token (valid 7 days), also mailed to the "
        "contact; for cooperatives that deliver it themselves.",
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="Result of disabling a contact's portal account.")
class PortalAccountChangePayload:
    portal_account: PortalAccount | None = strawberry.field(default=None, description="It now.")
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="Result of erasing a contact.")
class EraseContactPayload:
    erased_id: strawberry.ID | None = strawberry.field(
        default=None, description="The contact's id; the row stays, anonymised."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type
class StaffPortalMutations:
    @strawberry.mutation(
        description=needing(
            "contacts.manage",
            "Invite a contact to the portal (klantenportaal): a link valid for 7 days is "
            "e-mailed, and its token returned.",
        )
    )
    async def invite_portal_user(
        self, info: Info, contact_id: ContactId
    ) -> InvitePortalUserPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(contact_id, "Contact", ["contact_id"])
            account, token = await accounts.invite_portal_user(session, info.context.principal, pk)
            return {"portal_account": account, "token": token}

        return await run_mutation(info, InvitePortalUserPayload, CONTACT_ARGUMENT, work)

    @strawberry.mutation(
        description=needing(
            "contacts.manage", "Shut a contact out of the portal; sessions and links end at once."
        )
    )
    async def disable_portal_user(
        self, info: Info, contact_id: ContactId
    ) -> PortalAccountChangePayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(contact_id, "Contact", ["contact_id"])
            account = await accounts.disable_portal_user(session, info.context.principal, pk)
            return {"portal_account": account}

        return await run_mutation(info, PortalAccountChangePayload, CONTACT_ARGUMENT, work)

    @strawberry.mutation(
        description=needing(
            "contacts.manage",
            "Erase a contact's personal data (GDPR article 17): the row and its membership "
            "history stay, anonymised; the portal account goes; plugins hear contact.erased.",
        )
    )
    async def erase_contact(self, info: Info, contact_id: ContactId) -> EraseContactPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(contact_id, "Contact", ["contact_id"])
            await privacy.erase_contact(session, info.context.principal, pk)
            return {"erased_id": contact_id}

        return await run_mutation(info, EraseContactPayload, CONTACT_ARGUMENT, work)
