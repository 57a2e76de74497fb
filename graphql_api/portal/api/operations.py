"""The portal schema's queries and mutations. None takes a contact id: whose data it is
comes from the session alone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON

from graphql_api.contacts.models import Contact
from graphql_api.graphql_base.errors import UserError
from graphql_api.graphql_base.mutations import ErrorPaths, run_mutation
from graphql_api.graphql_base.relay import decode_id
from graphql_api.portal import accounts, mail, privacy
from graphql_api.portal import groups as portal_groups
from graphql_api.portal.api.context import PortalInfo
from graphql_api.portal.api.types import MailOptOutRef, PortalGroup, PortalMe

GROUP_ARGUMENT = ErrorPaths({"group_id": "groupId"}, input=None)
LINK_ARGUMENTS = ErrorPaths({"token": "token", "password": "password"}, input=None)


@strawberry.type
class PortalQuery:
    @strawberry.field(description="You: your name, e-mail and the shown groups you are in.")
    async def me(self, info: PortalInfo) -> PortalMe:
        portal = info.context.session()

        async def read(session: AsyncSession) -> PortalMe:
            contact = await session.get(Contact, portal.contact_id)
            assert contact is not None
            mine = await portal_groups.visible_groups(
                session, portal, today=info.context.today, members_only=True
            )
            return PortalMe(
                display_name=contact.display_name,
                email=contact.email,
                groups=[PortalGroup(entry=entry) for entry in mine],
                mail_opt_outs=await mail.opt_outs(session, portal.contact_id),
            )

        return await info.context.db.run(read)

    @strawberry.field(
        description="Every group shown on the portal today, by name, with whether you are in "
        "it and whether you may join or leave it."
    )
    async def groups(self, info: PortalInfo) -> list[PortalGroup]:
        portal = info.context.session()
        entries = await info.context.db.run(
            lambda s: portal_groups.visible_groups(s, portal, today=info.context.today)
        )
        return [PortalGroup(entry=entry) for entry in entries]

    @strawberry.field(
        description="Everything the cooperative's system holds about you, as JSON (your "
        "right of access, GDPR article 15)."
    )
    async def my_data(self, info: PortalInfo) -> JSON:
        portal = info.context.session()
        return await info.context.db.run(lambda s: privacy.my_data(s, portal.contact_id))


@strawberry.type(description="Result of opting out of a group's mail or withdrawing it.")
class PortalMailOptOutsPayload:
    mail_opt_outs: list[MailOptOutRef] | None = strawberry.field(
        default=None, description="Your opt-outs now, by group name."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="Result of joining or leaving a group.")
class PortalGroupPayload:
    group: PortalGroup | None = strawberry.field(default=None, description="The group now.")
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="Result of a portal account action.")
class PortalAccountPayload:
    ok: bool = strawberry.field(default=False, description="Whether it was done.")
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="Result of logging in.")
class PortalLoginPayload:
    session_token: str | None = strawberry.field(
        default=None,
        description="Send it as 'Authorization: Bearer <sessionToken>'; it lapses after "
        "GRAPHQL_API_PORTAL_SESSION_MINUTES without use.",
    )
    retry_after_seconds: int = strawberry.field(
        default=0, description="After too many failures: how long to wait before trying again."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


Password = Annotated[str, strawberry.argument(description="At least 10 characters.")]
LinkToken = Annotated[str, strawberry.argument(description="The token from the e-mailed link.")]
GroupId = Annotated[strawberry.ID, strawberry.argument(description="A group's id.")]


@strawberry.type
class PortalMutation:
    @strawberry.mutation(description="Accept an invitation: choose your password.")
    async def accept_portal_invitation(
        self, info: PortalInfo, token: LinkToken, password: Password
    ) -> PortalAccountPayload:
        return await _account_action(info, lambda s: accounts.accept_invitation(s, token, password))

    @strawberry.mutation(
        description="Log in with your e-mail address and password; returns a session token."
    )
    async def portal_login(
        self,
        info: PortalInfo,
        email: Annotated[str, strawberry.argument(description="Your e-mail address.")],
        password: Annotated[str, strawberry.argument(description="Your password.")],
    ) -> PortalLoginPayload:
        context = info.context
        async with context.db.transaction() as session:
            outcome = await accounts.login(
                session, email, password, context.address, context.session_lifetime
            )
        if outcome.token is not None:
            return PortalLoginPayload(session_token=outcome.token, errors=[])
        assert outcome.code is not None
        error = UserError(field=None, code=outcome.code, message=outcome.message)
        return PortalLoginPayload(retry_after_seconds=outcome.retry_after_seconds, errors=[error])

    @strawberry.mutation(description="End this session.")
    async def portal_logout(self, info: PortalInfo) -> PortalAccountPayload:
        portal = info.context.session()
        return await _account_action(info, lambda s: accounts.logout(s, portal))

    @strawberry.mutation(
        description="Ask for a password-reset link by e-mail. The answer is the same whether "
        "or not an account uses this address."
    )
    async def request_password_reset(
        self,
        info: PortalInfo,
        email: Annotated[str, strawberry.argument(description="Your e-mail address.")],
    ) -> PortalAccountPayload:
        return await _account_action(info, lambda s: accounts.request_password_reset(s, email))

    @strawberry.mutation(description="Choose a new password through a reset link.")
    async def reset_password(
        self, info: PortalInfo, token: LinkToken, password: Password
    ) -> PortalAccountPayload:
        return await _account_action(info, lambda s: accounts.reset_password(s, token, password))

    @strawberry.mutation(
        description="Join a group shown on the portal that you may change (Veranderen op portaal)."
    )
    async def join_group(self, info: PortalInfo, group_id: GroupId) -> PortalGroupPayload:
        return await _membership_change(info, group_id, portal_groups.join_group)

    @strawberry.mutation(description="Leave a group shown on the portal that you may change.")
    async def leave_group(self, info: PortalInfo, group_id: GroupId) -> PortalGroupPayload:
        return await _membership_change(info, group_id, portal_groups.leave_group)

    @strawberry.mutation(
        description="Opt out of a group's mail (afmelden): a group you are in. Its group "
        "mails and its mailing list leave you out until you withdraw it."
    )
    async def opt_out_of_mail(
        self, info: PortalInfo, group_id: GroupId
    ) -> PortalMailOptOutsPayload:
        return await _opt_out_change(info, group_id, mail.opt_out)

    @strawberry.mutation(
        description="Withdraw your opt-out of a group's mail: you get its mail again."
    )
    async def withdraw_mail_opt_out(
        self, info: PortalInfo, group_id: GroupId
    ) -> PortalMailOptOutsPayload:
        return await _opt_out_change(info, group_id, mail.withdraw)


async def _opt_out_change(
    info: PortalInfo, group_id: str, change: Callable[..., Awaitable[list[mail.OptOut]]]
) -> PortalMailOptOutsPayload:
    portal = info.context.session()

    async def work(session: AsyncSession) -> dict[str, Any]:
        pk = decode_id(group_id, "Group", ["group_id"])
        return {"mail_opt_outs": await change(session, portal, pk)}

    return await run_mutation(info, PortalMailOptOutsPayload, GROUP_ARGUMENT, work)  # type: ignore[arg-type]


async def _account_action(
    info: PortalInfo, action: Callable[[AsyncSession], Awaitable[Any]]
) -> PortalAccountPayload:
    """Run one account action in its transaction: ``ok``, or why not."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        await action(session)
        return {"ok": True}

    return await run_mutation(info, PortalAccountPayload, LINK_ARGUMENTS, work)  # type: ignore[arg-type]


async def _membership_change(
    info: PortalInfo, group_id: str, change: Callable[..., Awaitable[portal_groups.PortalGroup]]
) -> PortalGroupPayload:
    portal = info.context.session()
    today = info.context.today

    async def work(session: AsyncSession) -> dict[str, Any]:
        # An id of another kind is as unknown as a group that does not exist.
        pk = decode_id(group_id, "Group", ["group_id"])
        return {"group": PortalGroup(entry=await change(session, portal, pk, today=today))}

    return await run_mutation(info, PortalGroupPayload, GROUP_ARGUMENT, work)  # type: ignore[arg-type]
