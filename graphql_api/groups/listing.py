"""Finding groups: the filters and orderings of the ``groups`` list."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import Select, select

from graphql_api.groups.models import Group, GroupKind
from graphql_api.kernel.pagination import Ordering
from graphql_api.kernel.repository import escape_like


class GroupOrder(enum.StrEnum):
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"
    CREATED_AT_DESC = "CREATED_AT_DESC"


GROUP_ORDERINGS = {
    GroupOrder.NAME_ASC: Ordering((Group.name_key, Group.id)),
    GroupOrder.NAME_DESC: Ordering((Group.name_key, Group.id), descending=True),
    GroupOrder.CREATED_AT_ASC: Ordering((Group.created_at, Group.id)),
    GroupOrder.CREATED_AT_DESC: Ordering((Group.created_at, Group.id), descending=True),
}


@dataclass(frozen=True)
class GroupCriteria:
    """Which groups to list; each criterion left None does not narrow the list."""

    search: str | None = None
    kind: GroupKind | None = None
    closed: bool | None = None
    responsible_id: int | None = None
    neighbourhood_role: str | None = None


def groups_query(criteria: GroupCriteria) -> Select[tuple[Group]]:
    query = select(Group)
    if criteria.search and criteria.search.strip():
        pattern = "%" + escape_like(" ".join(criteria.search.split()).casefold()) + "%"
        query = query.where(Group.name_key.like(pattern, escape="\\"))
    if criteria.kind is not None:
        query = query.where(Group.kind == criteria.kind)
    if criteria.closed is not None:
        query = query.where(Group.closed.is_(criteria.closed))
    if criteria.responsible_id is not None:
        query = query.where(Group.responsible_id == criteria.responsible_id)
    if criteria.neighbourhood_role is not None:
        query = query.where(Group.neighbourhood_role == criteria.neighbourhood_role)
    return query
