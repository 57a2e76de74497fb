"""``node(id:)`` and ``nodes(ids:)``: any object by its global id, with the permission its
type needs. Each feature declares how its types are found (``@findable``); the composition
root gathers them (``node_queries``), so this module imports no feature."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import strawberry

from graphql_api.graphql_base.access import Needs
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import PublicError
from graphql_api.graphql_base.relay import Node, parse_global_id
from graphql_api.kernel.db import Base
from graphql_api.kernel.errors import ErrorCode


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


T = TypeVar("T", bound=type)


def findable(
    model: type[Base], permission: str | None, *, owner: str | None = None
) -> Callable[[T], T]:
    """Declares how ``node`` finds the objects of a Strawberry type implementing ``Node``:
    the type's table and what a caller needs (see ``Findable``)."""

    def declare(node_type: T) -> T:
        node_type.findable = Findable(model, permission, owner)
        return node_type

    return declare


def findables(node_types: Sequence[type]) -> dict[str, Findable]:
    """The declared ``Findable`` of each type, by its GraphQL name, in the order given."""
    return {t.__strawberry_definition__.name: t.findable for t in node_types}


def node_queries(node_types: Sequence[type]) -> type:
    """The ``node`` and ``nodes`` fields over these ``@findable`` types; any other id is
    null."""
    by_name: Mapping[str, Findable] = findables(node_types)
    needs = "Needs what the object's type needs: " + "; ".join(
        f"{name} {findable.needs}" for name, findable in by_name.items()
    )

    async def find_node(info: Info, global_id: str) -> Any:
        # INVALID_ID for an id this API did not write, as every other lookup answers it;
        # FORBIDDEN when the caller lacks what the id's type needs.
        parsed = parse_global_id(global_id)
        if parsed is None or parsed[0] not in by_name:
            raise PublicError("This is not an id of this API.", code=ErrorCode.INVALID_ID)
        type_name, pk = parsed
        return await by_name[type_name].find(info, pk)

    async def found_or_refused(info: Info, global_id: str) -> Any:
        # Returned, not raised: GraphQL reports it at this id's place and answers the others.
        try:
            return await find_node(info, global_id)
        except PublicError as refused:
            return refused

    @strawberry.type
    class NodeQueries:
        @strawberry.field(
            description="Any object by its global id; null when it does not exist, an "
            "`INVALID_ID` error when the id is not one this API wrote. " + needs + "."
        )
        async def node(
            self,
            info: Info,
            id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
        ) -> Node | None:
            return await find_node(info, id)

        @strawberry.field(
            description="Objects by their global ids, in the order given, each null when it "
            "does not exist; one it needs a permission for, or not written by this API, is null "
            "with an error at its place. "
            "At most the largest page size (`GRAPHQL_API_MAX_PAGE_SIZE`) of ids. " + needs + "."
        )
        async def nodes(
            self,
            info: Info,
            ids: Annotated[list[strawberry.ID], strawberry.argument(description="Global ids.")],
        ) -> list[Node | None]:
            limit = info.context.settings.max_page_size
            if len(ids) > limit:
                raise PublicError(f"nodes takes at most {limit} ids; {len(ids)} were given.")
            return await asyncio.gather(*(found_or_refused(info, i) for i in ids))

    return NodeQueries
