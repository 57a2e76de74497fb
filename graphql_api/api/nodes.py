"""``node(id:)`` and ``nodes(ids:)``: any object by its global id, with the permission its
type needs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import strawberry

from graphql_api.api.access import Needs
from graphql_api.api.context import Info
from graphql_api.api.errors import PublicError
from graphql_api.api.relay import Node, parse_global_id
from graphql_api.contacts import models as contacts
from graphql_api.email_templates import models as email_templates
from graphql_api.groups import models as groups
from graphql_api.kernel.db import Base
from graphql_api.notifications import models as notifications
from graphql_api.users import models as users


@dataclass(frozen=True)
class Findable:
    """How ``node`` finds the objects of one type: their table, and the permission a caller
    needs (None: any caller, as a group's responsible user is shown to everyone who sees
    the group)."""

    model: type[Base]
    permission: str | None
    owner: str | None = None
    """The column naming the owning user: the owner finds their own without
    ``permission``, and anyone else's is null to them, as if it did not exist."""

    async def find(self, info: Info, pk: int) -> Any:
        principal = info.context.principal
        if self.permission is None or principal.can(self.permission):
            return await info.context.row(self.model, pk)
        if self.owner is not None:
            row = await info.context.row(self.model, pk)
            owned = row is not None and getattr(row, self.owner) == principal.user_id
            return row if owned else None
        Needs(self.permission).on_unauthorized()

    @property
    def needs(self) -> str:
        """What a caller needs, in words, for the fields' descriptions."""
        if self.permission is None:
            return "nothing"
        if self.owner is not None:
            return f"its owner, or `{self.permission}`"
        return f"`{self.permission}`"


NODE_MODELS: dict[str, Findable] = {
    "Group": Findable(groups.Group, "groups.view"),
    "Contact": Findable(contacts.Contact, "contacts.view"),
    "User": Findable(users.User, None),
    "EmailTemplate": Findable(email_templates.EmailTemplate, "templates.view"),
    "MembershipEvent": Findable(groups.MembershipEvent, "groups.view"),
    "StaffRole": Findable(users.StaffRole, "users.manage"),
    "AuditEntry": Findable(users.AuditEntry, "users.manage"),
    "NotificationDelivery": Findable(notifications.Delivery, "deliveries.manage"),
    "ApiToken": Findable(users.ApiToken, "users.manage", owner="user_id"),
}
"""Every core type implementing ``Node``, by name (a test keeps it so)."""

NEEDS = "Needs what the object's type needs: " + "; ".join(
    f"{name} {findable.needs}" for name, findable in NODE_MODELS.items()
)
"""Said by ``node`` and ``nodes``, from the table above so that it never disagrees."""


async def find_node(info: Info, global_id: str) -> Any:
    """The object ``global_id`` names, or None; a ``FORBIDDEN`` error when the caller lacks
    what its type needs."""
    parsed = parse_global_id(global_id)
    if parsed is None or parsed[0] not in NODE_MODELS:
        return None
    type_name, pk = parsed
    return await NODE_MODELS[type_name].find(info, pk)


async def _found_or_refused(info: Info, global_id: str) -> Any:
    # Returned, not raised: GraphQL reports it at this id's place and answers the others.
    try:
        return await find_node(info, global_id)
    except PublicError as refused:
        return refused


@strawberry.type
class NodeQueries:
    @strawberry.field(
        description="Any object by its global id; null when it does not exist. " + NEEDS + "."
    )
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> Node | None:
        return await find_node(info, id)

    @strawberry.field(
        description="Objects by their global ids, in the order given, each null when it does "
        "not exist; one it needs a permission for is null with an error at its place. "
        "At most the largest page size (`GRAPHQL_API_MAX_PAGE_SIZE`) of ids. " + NEEDS + "."
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global ids.")],
    ) -> list[Node | None]:
        limit = info.context.settings.max_page_size
        if len(ids) > limit:
            raise PublicError(f"nodes takes at most {limit} ids; {len(ids)} were given.")
        return await asyncio.gather(*(_found_or_refused(info, i) for i in ids))
