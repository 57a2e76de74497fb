"""The coach plugin: the role, plus ``linkHoomdossier``, ``unlinkHoomdossier`` and
``Contact.hoomdossierAccountId``."""

# Strawberry reads these resolvers' annotations at runtime: no postponed annotations here.
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import strawberry
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import (
    Change,
    Contact,
    ContactErased,
    ContactType,
    ErrorCode,
    ErrorPaths,
    Group,
    GroupDeleted,
    Info,
    Membership,
    MembersRemoved,
    PluginColumn,
    Principal,
    Problems,
    RolePlugin,
    UserError,
    UserInputError,
    clean_text,
    compiled,
    decode_id,
    holder_ids,
    hookimpl,
    needing,
    requires,
    run_mutation,
)
from graphql_api_coach.models import HoomdossierLink

ROLE = "coach"
LINK_PERMISSION = "coach.link_hoomdossier"
LINK_ARGUMENTS = ErrorPaths({"contact_id": "contactId", "account_id": "accountId"}, input=None)
"""``linkHoomdossier(contactId:, accountId:)`` and ``unlinkHoomdossier(contactId:)``."""


@strawberry.type(description="Result of linking or unlinking a coach's Hoomdossier account.")
class HoomdossierLinkPayload:
    contact: ContactType | None = strawberry.field(
        default=None, description="The coach, when the change was made."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@requires(LINK_PERMISSION)
async def link(
    session: AsyncSession, actor: Principal, contact_id: int, account_id: str
) -> Contact:
    """Link a coach to a Hoomdossier account, replacing the coach's earlier link."""
    problems = Problems()
    account = clean_text(problems, ["account_id"], account_id, max_length=100, required=True)
    problems.raise_if_any()
    # Locked, so a concurrent removal from the coach group waits for this link, or this
    # link waits for the removal and then sees the contact is no coach any more.
    contact = await session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        raise UserInputError.single(["contact_id"], ErrorCode.NOT_FOUND, "No contact with this id.")
    is_coach = await session.scalar(holder_ids(ROLE).where(Membership.contact_id == contact_id))
    if is_coach is None:
        raise UserInputError.single(
            ["contact_id"],
            ErrorCode.INVALID,
            f"{contact.display_name} is not a coach: only members of a group with the role "
            "'Is coach' can be linked to Hoomdossier.",
        )
    taken = await session.scalar(
        select(HoomdossierLink.contact_id).where(
            HoomdossierLink.account_id == account, HoomdossierLink.contact_id != contact_id
        )
    )
    if taken is not None:
        raise UserInputError.single(
            ["account_id"],
            ErrorCode.DUPLICATE,
            "This Hoomdossier account is linked to another coach.",
        )
    await session.execute(delete(HoomdossierLink).where(HoomdossierLink.contact_id == contact_id))
    session.add(HoomdossierLink(contact_id=contact_id, account_id=account))
    await session.flush()
    return contact


@requires(LINK_PERMISSION)
async def unlink(session: AsyncSession, actor: Principal, contact_id: int) -> Contact:
    """Remove a coach's Hoomdossier link."""
    result = await session.execute(
        delete(HoomdossierLink)
        .where(HoomdossierLink.contact_id == contact_id)
        .returning(HoomdossierLink.contact_id)
    )
    if result.scalar() is None:
        raise UserInputError.single(
            ["contact_id"], ErrorCode.NOT_FOUND, "This contact has no Hoomdossier link."
        )
    contact = await session.get(Contact, contact_id)
    assert contact is not None
    return contact


def a_coachs_link() -> Any:
    """Only a coach's link counts, even one left behind while this plugin was not installed."""
    return HoomdossierLink.contact_id.in_(holder_ids(ROLE))


ACCOUNT = PluginColumn(
    HoomdossierLink.account_id, key=HoomdossierLink.contact_id, where=(a_coachs_link(),)
)
"""``hoomdossierAccountId`` in a planned read: the link's account, with the contact's row."""


async def load_accounts(session: AsyncSession, contact_ids: Sequence[int]) -> list[str | None]:
    rows = await session.execute(
        select(HoomdossierLink.contact_id, HoomdossierLink.account_id).where(
            HoomdossierLink.contact_id.in_(contact_ids), a_coachs_link()
        )
    )
    accounts = {contact_id: account for contact_id, account in rows}
    return [accounts.get(contact_id) for contact_id in contact_ids]


class CoachPlugin(RolePlugin):
    def __init__(self) -> None:
        super().__init__(
            key=ROLE,
            labels={"nl": "Is coach", "en": "Is coach"},
            description="An energy coach (energiecoach) in the neighbourhood approach; "
            "can be linked to a Hoomdossier account.",
            holders_field="coaches",
            flag_field="isCoach",
        )

    @hookimpl
    def migrations(self) -> str:
        return str(Path(__file__).parent / "migrations")

    @hookimpl
    def register_permissions(self) -> dict[str, str]:
        return {LINK_PERMISSION: "Link coaches to Hoomdossier accounts and unlink them."}

    @hookimpl
    def mutation_fields(self) -> list[Any]:
        async def link_hoomdossier(
            info: Info,
            contact_id: Annotated[strawberry.ID, strawberry.argument(description="A coach.")],
            account_id: Annotated[
                str, strawberry.argument(description="The coach's Hoomdossier account id.")
            ],
        ) -> HoomdossierLinkPayload:
            async def work(session: AsyncSession) -> dict[str, Any]:
                pk = decode_id(contact_id, "Contact", ["contact_id"])
                return {"contact": await link(session, info.context.principal, pk, account_id)}

            return await run_mutation(info, HoomdossierLinkPayload, LINK_ARGUMENTS, work)

        async def unlink_hoomdossier(
            info: Info,
            contact_id: Annotated[strawberry.ID, strawberry.argument(description="A coach.")],
        ) -> HoomdossierLinkPayload:
            async def work(session: AsyncSession) -> dict[str, Any]:
                pk = decode_id(contact_id, "Contact", ["contact_id"])
                return {"contact": await unlink(session, info.context.principal, pk)}

            return await run_mutation(info, HoomdossierLinkPayload, LINK_ARGUMENTS, work)

        return [
            strawberry.mutation(
                resolver=link_hoomdossier,
                description=needing(
                    LINK_PERMISSION,
                    "Link a coach (a member of an 'Is coach' group) to a Hoomdossier "
                    "account; replaces the coach's earlier link.",
                ),
            ),
            strawberry.mutation(
                resolver=unlink_hoomdossier,
                description=needing(LINK_PERMISSION, "Remove a coach's Hoomdossier link."),
            ),
        ]

    @hookimpl
    def contact_fields(self) -> list[Any]:
        async def hoomdossier_account_id(
            root: strawberry.Parent[Contact], info: Info
        ) -> str | None:
            return await info.context.loader(load_accounts).load(root.id)

        return [
            *super().contact_fields(),
            strawberry.field(
                resolver=hoomdossier_account_id,
                description="The coach's Hoomdossier account, if linked.",
                metadata=compiled(ACCOUNT),
            ),
        ]

    @hookimpl
    async def apply_change(self, session: AsyncSession, change: Change) -> None:
        """A contact who stops being a coach keeps no Hoomdossier link, nor does an erased
        contact."""
        if isinstance(change, ContactErased):
            await session.execute(
                delete(HoomdossierLink).where(HoomdossierLink.contact_id == change.contact_id)
            )
            return
        if not (isinstance(change, MembersRemoved | GroupDeleted)):
            return
        if change.group.neighbourhood_role != ROLE:
            return
        if isinstance(change, MembersRemoved):
            former = list(change.contact_ids)
        else:
            former = list(
                await session.scalars(
                    select(Membership.contact_id).where(Membership.group_id == change.group.id)
                )
            )
        locked = select(Contact.id).where(Contact.id.in_(former)).order_by(Contact.id)
        await session.execute(locked.with_for_update())
        still_coach = holder_ids(ROLE).where(Group.id != change.group.id)
        await session.execute(
            delete(HoomdossierLink).where(
                HoomdossierLink.contact_id.in_(former),
                HoomdossierLink.contact_id.not_in(still_coach),
            )
        )
