"""Everything a role plugin needs, so each role plugin is a few lines.

``RolePlugin`` registers one role ("Rol in buurtaanpak"), lists its holders on ``Query``
(paginated), flags them on ``Contact`` and in e-mail templates (``contact.isCoach``),
without N+1: one statement per request and
role for all contacts asked for, and in a planned read none of its own (the flag is an
``exists`` in the contacts' statement). The rules every role obeys live in the built-in
``core.roles`` plugin.
"""

# Strawberry reads these resolvers' annotations at runtime: no postponed annotations here.
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts import models as contacts
from graphql_api.email_templates.merging import MergeField
from graphql_api.graphql_base.access import guarded_field
from graphql_api.graphql_base.compiled import SqlValue, compiled
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.cost import READS_MEMBERSHIP
from graphql_api.graphql_base.relay import After, Connection, First, paginate
from graphql_api.groups.models import Group, Membership
from graphql_api.kernel.hooks import hookimpl
from graphql_api.kernel.pagination import Ordering
from graphql_api.roles.registry import RoleDefinition

if TYPE_CHECKING:
    from graphql_api.contacts.api.types import Contact

ContactRef = Annotated["Contact", strawberry.lazy("graphql_api.contacts.api.types")]
BY_ID = Ordering((contacts.Contact.id,))


def holder_ids(role: str) -> Select[tuple[int]]:
    """Ids of the contacts holding ``role``: the explicit members of its groups."""
    return (
        select(Membership.contact_id)
        .join(Group, Group.id == Membership.group_id)
        .where(Group.neighbourhood_role == role)
    )


class RolePlugin:
    """A plugin object for one role; expose an instance as the ``graphql_api`` entry point."""

    def __init__(
        self,
        key: str,
        labels: dict[str, str],
        description: str,
        holders_field: str,
        flag_field: str,
    ) -> None:
        self.role = RoleDefinition(key=key, labels=labels, description=description)
        self.holders_field = holders_field
        self.flag_field = flag_field
        self.__name__ = key

    @hookimpl
    def register_roles(self) -> list[RoleDefinition]:
        return [self.role]

    @hookimpl
    def query_fields(self) -> list[Any]:
        role = self.role.key

        async def holders(
            info: Info,
            first: First = None,
            after: After = None,
        ) -> Connection[ContactRef]:
            query = select(contacts.Contact).where(contacts.Contact.id.in_(holder_ids(role)))
            return await paginate(
                info, query, BY_ID, first=first, after=after, key_of=lambda c: (c.id,)
            )

        label = self.role.label("en")
        return [
            guarded_field(
                "contacts.view",
                f"Contacts holding the role {label!r} ({self.role.label('nl')}), oldest first.",
                resolver=holders,
                name=self.holders_field,
                metadata=READS_MEMBERSHIP,
            )
        ]

    @hookimpl
    def contact_fields(self) -> list[Any]:
        load = self._load_flags

        async def flag(root: strawberry.Parent[contacts.Contact], info: Info) -> bool:
            return await info.context.loader(load).load(root.id)

        return [
            strawberry.field(
                resolver=flag,
                name=self.flag_field,
                metadata={**READS_MEMBERSHIP, **compiled(SqlValue(self._holds))},
                description=f"Whether the contact holds the role {self.role.label('en')!r} "
                f"({self.role.label('nl')}).",
            )
        ]

    @hookimpl
    def merge_fields(self) -> list[MergeField]:
        async def flags(session: AsyncSession, contact_ids: Sequence[int]) -> dict[int, bool]:
            return dict(zip(contact_ids, await self._load_flags(session, contact_ids), strict=True))

        description = f"Whether the contact holds the role {self.role.label('nl')!r}."
        return [MergeField(self.flag_field, description, True, flags)]

    def _holds(self, contact: Any) -> Any:
        """Whether ``contact`` (its table, in a statement) holds the role: the flag as SQL,
        for compiled reads."""
        return holder_ids(self.role.key).where(Membership.contact_id == contact.id).exists()

    async def _load_flags(self, session: AsyncSession, contact_ids: Sequence[int]) -> list[bool]:
        holding = set(
            await session.scalars(
                holder_ids(self.role.key).where(Membership.contact_id.in_(contact_ids))
            )
        )
        return [contact_id in holding for contact_id in contact_ids]
