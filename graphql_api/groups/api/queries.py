"""GraphQL queries of groups: one group, and the ``groups`` list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import strawberry
from sqlalchemy import Select

from graphql_api.graphql_base.access import guarded_field
from graphql_api.graphql_base.compiled import ById, PageOf, compiled
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.enums import described_enum
from graphql_api.graphql_base.relay import After, Connection, First, paginate, query_id
from graphql_api.groups import models
from graphql_api.groups.api.filters import FilterFieldInfo
from graphql_api.groups.api.inputs import GroupFilter
from graphql_api.groups.api.types import Group
from graphql_api.groups.listing import GROUP_ORDERINGS, GroupCriteria, GroupOrder, groups_query
from graphql_api.groups.membership_reads import group_ids_of_contact
from graphql_api.kernel.pagination import Ordering

GroupOrderType = described_enum(
    GroupOrder,
    "Order of `groups`.",
    {
        GroupOrder.NAME_ASC: "By name, A to Z, ignoring case.",
        GroupOrder.NAME_DESC: "By name, Z to A, ignoring case.",
        GroupOrder.CREATED_AT_ASC: "Oldest first.",
        GroupOrder.CREATED_AT_DESC: "Newest first.",
    },
)


def _listed(_: None, arguments: Mapping[str, Any]) -> tuple[Select[Any], Ordering] | None:
    """``groups`` without a filter, for compiled reads; a filter is the resolver's."""
    if arguments.get("filter") is not None:
        return None
    order = GroupOrder(arguments.get("orderBy") or GroupOrder.NAME_ASC)
    return groups_query(GroupCriteria()), GROUP_ORDERINGS[order]


@strawberry.type
class GroupQueries:
    @guarded_field(
        "groups.view",
        "One group by id; null when it does not exist.",
        metadata=compiled(ById(models.Group, "Group")),
    )
    async def group(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the group.")],
    ) -> Group | None:
        return await info.context.row(models.Group, query_id(id, "Group"))

    @guarded_field(
        "groups.view",
        "Groups (groepen), filtered and ordered, a page at a time.",
        metadata=compiled(PageOf(models.Group, _listed)),
    )
    async def groups(
        self,
        info: Info,
        filter: Annotated[
            GroupFilter | None, strawberry.argument(description="Which groups.")
        ] = None,
        order_by: Annotated[
            GroupOrderType | None, strawberry.argument(description="Sort order; NAME_ASC if null.")
        ] = GroupOrder.NAME_ASC,
        first: First = None,
        after: After = None,
    ) -> Connection[Group]:
        ordering = GROUP_ORDERINGS[GroupOrder(order_by or GroupOrder.NAME_ASC)]
        query = groups_query(filter.criteria() if filter else GroupCriteria())
        if filter and filter.has_member_id:
            contact_pk = query_id(filter.has_member_id, "Contact")
            ids = await info.context.db.run(
                lambda session: group_ids_of_contact(session, contact_pk)
            )
            query = query.where(models.Group.id.in_(ids))
        return await paginate(
            info,
            query,
            ordering,
            first=first,
            after=after,
            key_of=lambda g: tuple(getattr(g, c.key) for c in ordering.columns),
        )

    @strawberry.field(
        description="Every field filter conditions can test, the plugins' included, to build "
        "a filter editor; any signed-in caller."
    )
    def filter_fields(self, info: Info) -> list[FilterFieldInfo]:
        return list(info.context.filter_fields.values())  # type: ignore[arg-type]
