"""What a group is built from, and so its kind: included and excluded groups
(composite), a filter (dynamic) or neither (static). No group may contain itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.groups.filters import validate_filter
from graphql_api.groups.graph import find_cycle, lock_graph
from graphql_api.groups.models import Group, GroupKind, GroupLink, LinkRole, Membership
from graphql_api.groups.rules import rules_of
from graphql_api.kernel.errors import ErrorCode, Problems, UserInputError
from graphql_api.kernel.repository import missing_ids

MAX_PARTS = 100
"""Most groups a composite includes (or excludes); nest composites for more."""

STRUCTURE = ("composed_of_ids", "composition_mode", "excluded_group_ids", "filter")
"""Settings that decide a group's kind and members."""

GROUP_LISTS = ("composed_of_ids", "excluded_group_ids")


async def apply_structure(
    session: AsyncSession, group: Group, values: Mapping[str, Any], *, new: bool
) -> None:
    """Set what the group is built from (composition or filter), and so its kind."""
    if not new and not set(STRUCTURE) & set(values):
        return
    current = await links_of(session, group.id)
    included = _given_list(values, "composed_of_ids", current[LinkRole.INCLUDE])
    excluded = _given_list(values, "excluded_group_ids", current[LinkRole.EXCLUDE])
    tree = values.get("filter", group.filter)
    mode = values.get("composition_mode", group.composition_mode)
    problems = Problems()
    filter_groups: set[int] = set()
    if tree is not None:
        try:
            tree, filter_groups = validate_filter(tree, rules_of(session).filter_fields)
        except UserInputError as error:
            problems.items.extend(error.problems)
    _check_group_lists(included, excluded, problems)
    if tree is not None and included:
        problems.add(
            ["filter"],
            ErrorCode.KIND_CONFLICT,
            "A group is dynamic (filter) or composite (composedOfIds), not both.",
        )
    if mode is None:
        problems.add(["composition_mode"], ErrorCode.REQUIRED, "compositionMode is ANY or ALL.")
    for field, ids in zip(GROUP_LISTS, (included, excluded), strict=True):
        missing = set(await missing_ids(session, Group, ids))
        for index, group_id in enumerate(ids):
            if group_id in missing:
                problems.add([field, str(index)], ErrorCode.NOT_FOUND, "No group with this id.")
    if await missing_ids(session, Group, filter_groups):
        problems.add(["filter"], ErrorCode.NOT_FOUND, "memberOf names a group that does not exist.")
    problems.raise_if_any()

    kind = GroupKind.COMPOSITE if included else GroupKind.DYNAMIC if tree else GroupKind.STATIC
    if kind is not GroupKind.STATIC and group.kind is GroupKind.STATIC and not new:
        await _refuse_if_members(session, group, "composed_of_ids" if included else "filter")
    await lock_graph(session)
    cycle = await find_cycle(
        session, group.id, group.name, [*included, *excluded, *sorted(filter_groups)]
    )
    if cycle:
        target, names = cycle
        field = (
            "composed_of_ids"
            if target in included
            else "excluded_group_ids"
            if target in excluded
            else "filter"
        )
        raise UserInputError.single(
            [field],
            ErrorCode.CYCLE,
            "This would make a group contain itself: " + " -> ".join(names) + ".",
        )
    group.kind, group.filter, group.composition_mode = kind, tree, mode
    await session.execute(delete(GroupLink).where(GroupLink.group_id == group.id))
    links = [
        (LinkRole.INCLUDE, included),
        (LinkRole.EXCLUDE, excluded),
        (LinkRole.FILTER, sorted(filter_groups)),
    ]
    session.add_all(
        GroupLink(group_id=group.id, member_group_id=member_id, role=role, position=position)
        for role, ids in links
        for position, member_id in enumerate(ids)
    )
    await session.flush()


async def _refuse_if_members(session: AsyncSession, group: Group, field: str) -> None:
    """A static group with explicit members cannot become derived: its links would
    silently stop counting."""
    has_members = await session.scalar(
        select(Membership.contact_id).where(Membership.group_id == group.id).limit(1)
    )
    if has_members is not None:
        raise UserInputError.single(
            [field],
            ErrorCode.HAS_MEMBERS,
            f"{group.name!r} has explicit members, which would silently stop counting; "
            "remove them first.",
        )


def _given_list(values: Mapping[str, Any], key: str, current: list[int]) -> list[int]:
    given = values.get(key, current)
    return list(given) if given is not None else []


def _check_group_lists(included: list[int], excluded: list[int], problems: Problems) -> None:
    for field, ids in zip(GROUP_LISTS, (included, excluded), strict=True):
        if len(ids) > MAX_PARTS:
            problems.add([field], ErrorCode.TOO_MANY, f"At most {MAX_PARTS} groups.")
        seen: set[int] = set()
        for index, group_id in enumerate(ids):
            if group_id in seen:
                problems.add(
                    [field, str(index)], ErrorCode.DUPLICATE, "This group is listed twice."
                )
            seen.add(group_id)
    for index, group_id in enumerate(excluded):
        if group_id in included:
            problems.add(
                ["excluded_group_ids", str(index)],
                ErrorCode.DUPLICATE,
                "A group cannot be both included and excluded.",
            )
    if excluded and not included:
        problems.add(
            ["excluded_group_ids"],
            ErrorCode.REQUIRED,
            "Exclusions apply to a composite: give composedOfIds too.",
        )


async def links_of(session: AsyncSession, group_id: int | None) -> dict[LinkRole, list[int]]:
    """The groups a group includes, excludes and filters on, in the order given."""
    found: dict[LinkRole, list[int]] = {role: [] for role in LinkRole}
    if group_id is None:
        return found
    rows = await session.execute(
        select(GroupLink.role, GroupLink.member_group_id)
        .where(GroupLink.group_id == group_id)
        .order_by(GroupLink.position)
    )
    for role, member_id in rows:
        found[role].append(member_id)
    return found


async def groups_using(session: AsyncSession, group_ids: Sequence[int]) -> dict[int, list[Group]]:
    """The groups that include, exclude or filter on each group, by name."""
    rows = await session.execute(
        select(GroupLink.member_group_id, Group)
        .join(Group, Group.id == GroupLink.group_id)
        .where(GroupLink.member_group_id.in_(group_ids))
        .order_by(Group.name_key)
    )
    found: dict[int, list[Group]] = {group_id: [] for group_id in group_ids}
    for used_id, user in rows:
        if user not in found[used_id]:
            found[used_id].append(user)
    return found
