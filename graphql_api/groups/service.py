"""Creating, changing and deleting groups and their explicit memberships.

Every path that adds or removes a member goes through :func:`add_members` and
:func:`remove_members`, so the rules and the history hold for all of them. The one
exception is :func:`convert_to_static`, which writes links for contacts that are members
already (derived), with source CONVERSION and their history, in two set-based statements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Integer, delete, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.changes import (
    GroupCreated,
    GroupDeleted,
    GroupSnapshot,
    GroupUpdated,
    MembersAdded,
    MembersRemoved,
)
from graphql_api.contacts.models import Contact
from graphql_api.db import UtcDateTime, utcnow
from graphql_api.email_templates.models import EmailTemplate
from graphql_api.errors import ErrorCode, Problem, Problems, UserInputError
from graphql_api.groups.filters import validate_filter
from graphql_api.groups.graph import find_cycle, lock_graph
from graphql_api.groups.membership import members_query
from graphql_api.groups.models import (
    CompositionMode,
    Group,
    GroupKind,
    GroupLink,
    LinkRole,
    Membership,
    MembershipAction,
    MembershipEvent,
    MembershipSource,
)
from graphql_api.naming import api_field
from graphql_api.repository import missing_ids
from graphql_api.rules import rules_of
from graphql_api.users.models import User
from graphql_api.validation import clean_text, name_key

MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000
MAX_PARTS = 100
"""Most groups a composite includes (or excludes); nest composites for more."""
MAX_REPORTED_IDS = 20
"""How many unknown ids are reported one by one; a longer list of typos says nothing new."""

BOOLEAN_SETTINGS = (
    "show_on_portal",
    "show_on_contact",
    "editable_on_portal",
    "email_on_new_member",
    "closed",
)
STRUCTURE = ("composed_of_ids", "composition_mode", "excluded_group_ids", "filter")
"""Settings that decide a group's kind and members."""
SETTINGS = (
    *STRUCTURE,
    "name",
    "description",
    "responsible_id",
    "start_date",
    "end_date",
    "new_member_email_template_id",
    "neighbourhood_role",
    *BOOLEAN_SETTINGS,
)


async def create_group(
    session: AsyncSession, actor: User | None, values: Mapping[str, Any]
) -> Group:
    """Create a group from ``values`` (setting name -> value; absent = default); its kind
    follows from them: composite with ``composed_of_ids``, dynamic with ``filter``."""
    group = Group(
        kind=GroupKind.STATIC,
        created_by_id=actor.id if actor else None,
        **{setting: False for setting in BOOLEAN_SETTINGS},
    )
    if "name" not in values:
        raise UserInputError.single(["name"], ErrorCode.REQUIRED, "name is required.")
    group.composition_mode = CompositionMode.ANY
    await _apply_settings(session, group, values)
    session.add(group)
    await session.flush()
    await _apply_structure(session, group, values, new=True)
    await rules_of(session).changed(session, GroupCreated(GroupSnapshot.of(group), _id(actor)))
    return group


async def update_group(
    session: AsyncSession, actor: User | None, group_id: int, changes: Mapping[str, Any]
) -> Group:
    """Change the settings named in ``changes``; absent ones stay, None clears."""
    group = await get_group(session, group_id, field="id")
    before = GroupSnapshot.of(group)
    await _apply_settings(session, group, changes)
    await _apply_structure(session, group, changes, new=False)
    group.updated_at = utcnow()
    await session.flush()
    change = GroupUpdated(before, GroupSnapshot.of(group), _id(actor))
    await rules_of(session).changed(session, change)
    return group


def _id(actor: User | None) -> int | None:
    return actor.id if actor else None


async def delete_group(session: AsyncSession, actor: User | None, group_id: int) -> None:
    """Delete a group with its memberships and their history, unless another group uses it."""
    group = await get_group(session, group_id, field="id")
    users = (await groups_using(session, [group_id]))[group_id]
    if users:
        names = ", ".join(repr(user.name) for user in users)
        raise UserInputError.single(
            ["id"],
            ErrorCode.GROUP_IN_USE,
            f"{group.name!r} is used by {names}; change those groups first.",
        )
    await rules_of(session).changed(session, GroupDeleted(GroupSnapshot.of(group), _id(actor)))
    await session.execute(delete(Group).where(Group.id == group_id))


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


async def convert_to_static(session: AsyncSession, actor: User | None, group_id: int) -> Group:
    """Freeze a dynamic or composite group's current members into explicit memberships."""
    group = await get_group(session, group_id, field="groupId")
    if group.kind is GroupKind.STATIC:
        raise UserInputError.single(
            ["groupId"], ErrorCode.ALREADY_STATIC, f"{group.name!r} is already a static group."
        )
    before = GroupSnapshot.of(group)
    now = utcnow()
    actor_id = actor.id if actor else None
    members = await members_query(session, group_id)
    await session.execute(
        insert(Membership).from_select(
            ["group_id", "contact_id", "member_since", "added_by_id", "source"],
            members.with_only_columns(
                literal(group_id),
                Contact.id,
                literal(now, UtcDateTime()),
                literal(actor_id, Integer()),
                literal(MembershipSource.CONVERSION.value),
            ),
        )
    )
    await session.execute(
        insert(MembershipEvent).from_select(
            ["group_id", "contact_id", "action", "source", "actor_id", "occurred_at"],
            select(
                Membership.group_id,
                Membership.contact_id,
                literal(MembershipAction.ADDED.value),
                literal(MembershipSource.CONVERSION.value),
                literal(actor_id, Integer()),
                literal(now, UtcDateTime()),
            )
            .where(Membership.group_id == group_id)
            .order_by(Membership.contact_id),
        )
    )
    await session.execute(delete(GroupLink).where(GroupLink.group_id == group_id))
    group.kind = GroupKind.STATIC
    group.filter = None
    group.updated_at = now
    await session.flush()
    rules = rules_of(session)
    after = GroupSnapshot.of(group)
    await rules.changed(session, GroupUpdated(before, after, actor_id))
    frozen = tuple(
        await session.scalars(
            select(Membership.contact_id)
            .where(Membership.group_id == group_id)
            .order_by(Membership.contact_id)
        )
    )
    if frozen:
        source = MembershipSource.CONVERSION
        await rules.changed(session, MembersAdded(after, frozen, source, actor_id))
    return group


async def get_group(session: AsyncSession, group_id: int, *, field: str) -> Group:
    """The group, locked against concurrent changes until the transaction ends."""
    group = await session.get(Group, group_id, with_for_update=True)
    if group is None:
        raise UserInputError.single([field], ErrorCode.NOT_FOUND, "No group with this id.")
    return group


async def _apply_settings(session: AsyncSession, group: Group, values: Mapping[str, Any]) -> None:
    unknown = set(values) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown group settings: {sorted(unknown)}")
    problems = Problems()
    for setting, value in values.items():
        field = [api_field(setting)]
        if setting in STRUCTURE:
            continue
        if setting in BOOLEAN_SETTINGS:
            if value is None:
                problems.add(field, ErrorCode.REQUIRED, f"{field[0]} is true or false, not null.")
            else:
                setattr(group, setting, bool(value))
        elif setting == "name":
            group.name = clean_text(
                problems, field, value, max_length=MAX_NAME_LENGTH, required=True
            )  # type: ignore[assignment]
        elif setting == "description":
            group.description = clean_text(
                problems, field, value, max_length=MAX_DESCRIPTION_LENGTH
            )
        elif setting == "neighbourhood_role":
            roles = rules_of(session).roles
            if value is not None and value not in roles:
                known = ", ".join(sorted(roles)) or "none are registered"
                problems.add(
                    field, ErrorCode.UNKNOWN_ROLE, f"{value!r} is not a role (known: {known})."
                )
            else:
                group.neighbourhood_role = value
        else:
            setattr(group, setting, value)
    await _check_references(session, group, values, problems)
    _check_consistency(group, problems)
    if group.name and "name" in values:
        await _check_name_free(session, group, problems)
    problems.raise_if_any()


async def _apply_structure(
    session: AsyncSession, group: Group, values: Mapping[str, Any], *, new: bool
) -> None:
    """Set what the group is built from (composition or filter), and so its kind."""
    if not new and not set(STRUCTURE) & set(values):
        return
    current = await _links(session, group.id)
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
        problems.add(["compositionMode"], ErrorCode.REQUIRED, "compositionMode is ANY or ALL.")
    for field, ids in (("composedOfIds", included), ("excludedGroupIds", excluded)):
        missing = set(await missing_ids(session, Group, ids))
        for index, group_id in enumerate(ids):
            if group_id in missing:
                problems.add([field, str(index)], ErrorCode.NOT_FOUND, "No group with this id.")
    if await missing_ids(session, Group, filter_groups):
        problems.add(["filter"], ErrorCode.NOT_FOUND, "memberOf names a group that does not exist.")
    problems.raise_if_any()

    kind = GroupKind.COMPOSITE if included else GroupKind.DYNAMIC if tree else GroupKind.STATIC
    if kind is not GroupKind.STATIC and group.kind is GroupKind.STATIC and not new:
        has_members = await session.scalar(
            select(Membership.contact_id).where(Membership.group_id == group.id).limit(1)
        )
        if has_members is not None:
            raise UserInputError.single(
                ["composedOfIds" if included else "filter"],
                ErrorCode.HAS_MEMBERS,
                f"{group.name!r} has explicit members, which would silently stop counting; "
                "remove them first.",
            )
    await lock_graph(session)
    cycle = await find_cycle(
        session, group.id, group.name, [*included, *excluded, *sorted(filter_groups)]
    )
    if cycle:
        target, names = cycle
        field = (
            "composedOfIds"
            if target in included
            else "excludedGroupIds"
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


def _given_list(values: Mapping[str, Any], key: str, current: list[int]) -> list[int]:
    given = values.get(key, current)
    return list(given) if given is not None else []


def _check_group_lists(included: list[int], excluded: list[int], problems: Problems) -> None:
    for field, ids in (("composedOfIds", included), ("excludedGroupIds", excluded)):
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
                ["excludedGroupIds", str(index)],
                ErrorCode.DUPLICATE,
                "A group cannot be both included and excluded.",
            )
    if excluded and not included:
        problems.add(
            ["excludedGroupIds"],
            ErrorCode.REQUIRED,
            "Exclusions apply to a composite: give composedOfIds too.",
        )


async def _links(session: AsyncSession, group_id: int | None) -> dict[LinkRole, list[int]]:
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


async def _check_references(
    session: AsyncSession, group: Group, values: Mapping[str, Any], problems: Problems
) -> None:
    references: tuple[tuple[str, type[User] | type[EmailTemplate], str], ...] = (
        ("responsible_id", User, "user"),
        ("new_member_email_template_id", EmailTemplate, "e-mail template"),
    )
    for setting, model, noun in references:
        wanted = values.get(setting)
        if wanted is not None and await missing_ids(session, model, [wanted]):
            problems.add([api_field(setting)], ErrorCode.NOT_FOUND, f"No {noun} with this id.")


def _check_consistency(group: Group, problems: Problems) -> None:
    if group.email_on_new_member and group.new_member_email_template_id is None:
        problems.add(
            ["newMemberEmailTemplateId"],
            ErrorCode.TEMPLATE_REQUIRED,
            "emailOnNewMember needs a newMemberEmailTemplateId: which e-mail should be sent?",
        )
    start: date | None = group.start_date
    end: date | None = group.end_date
    if start is not None and end is not None and end < start:
        problems.add(
            ["endDate"],
            ErrorCode.END_BEFORE_START,
            f"endDate {end.isoformat()} is before startDate {start.isoformat()}.",
        )


async def _check_name_free(session: AsyncSession, group: Group, problems: Problems) -> None:
    key = name_key(group.name)
    clash = select(Group.id).where(Group.name_key == key)
    if group.id is not None:
        clash = clash.where(Group.id != group.id)
    if await session.scalar(clash) is not None:
        problems.add(
            ["name"], ErrorCode.NAME_TAKEN, f"A group named {group.name!r} already exists."
        )
    group.name_key = key


async def add_members(
    session: AsyncSession,
    actor: User | None,
    group_id: int,
    contact_ids: Sequence[int],
    source: MembershipSource,
) -> list[Membership]:
    """Link contacts to a static group; returns the new links (existing members are skipped)."""
    group = await _static_group(session, group_id)
    wanted = await _existing_contacts(session, contact_ids)
    already = set(
        await session.scalars(
            select(Membership.contact_id).where(
                Membership.group_id == group.id, Membership.contact_id.in_(wanted)
            )
        )
    )
    now = utcnow()
    actor_id = actor.id if actor else None
    added = [
        Membership(
            group_id=group.id, contact_id=cid, member_since=now, added_by_id=actor_id, source=source
        )
        for cid in wanted
        if cid not in already
    ]
    session.add_all(added)
    new_ids = tuple(m.contact_id for m in added)
    _record(session, group.id, new_ids, MembershipAction.ADDED, source, actor)
    await session.flush()
    if new_ids:
        change = MembersAdded(GroupSnapshot.of(group), new_ids, source, _id(actor))
        await _changed_for(session, change, contact_ids)
    return added


async def remove_members(
    session: AsyncSession,
    actor: User | None,
    group_id: int,
    contact_ids: Sequence[int],
    source: MembershipSource,
) -> list[int]:
    """Unlink contacts from a static group; returns the ids that were members."""
    group = await _static_group(session, group_id)
    wanted = await _existing_contacts(session, contact_ids)
    result = await session.execute(
        delete(Membership)
        .where(Membership.group_id == group.id, Membership.contact_id.in_(wanted))
        .returning(Membership.contact_id)
    )
    removed = sorted(result.scalars())
    _record(session, group.id, removed, MembershipAction.REMOVED, source, actor)
    await session.flush()
    if removed:
        change = MembersRemoved(GroupSnapshot.of(group), tuple(removed), source, _id(actor))
        await _changed_for(session, change, contact_ids)
    return removed


async def _changed_for(
    session: AsyncSession, change: MembersAdded | MembersRemoved, given: Sequence[int]
) -> None:
    """Report a membership change; a problem a plugin raises about one contact
    (``["contactIds", "<contact id>"]``) is pointed at that contact's place in ``given``."""
    try:
        await rules_of(session).changed(session, change)
    except UserInputError as error:
        place = {contact_id: index for index, contact_id in reversed(list(enumerate(given)))}
        raise UserInputError(
            [
                Problem((p.field[0], str(place[int(p.field[1])])), p.code, p.message)
                if p.field[:1] == ("contactIds",)
                and len(p.field) == 2
                and p.field[1].isdigit()
                and int(p.field[1]) in place
                else p
                for p in error.problems
            ]
        ) from error


def _record(
    session: AsyncSession,
    group_id: int,
    contact_ids: Sequence[int],
    action: MembershipAction,
    source: MembershipSource,
    actor: User | None,
) -> None:
    now = utcnow()
    session.add_all(
        MembershipEvent(
            group_id=group_id,
            contact_id=cid,
            action=action,
            source=source,
            actor_id=actor.id if actor else None,
            occurred_at=now,
        )
        for cid in contact_ids
    )


async def _static_group(session: AsyncSession, group_id: int) -> Group:
    group = await get_group(session, group_id, field="groupId")
    if group.kind is not GroupKind.STATIC:
        raise UserInputError.single(
            ["groupId"],
            ErrorCode.NOT_STATIC,
            f"{group.name!r} is a {group.kind.lower()} group: its members follow from its "
            "definition and cannot be added or removed one by one.",
        )
    return group


async def _existing_contacts(session: AsyncSession, contact_ids: Sequence[int]) -> list[int]:
    """The distinct ids in call order, or an error for each unknown one (by list position)."""
    missing = set(await missing_ids(session, Contact, contact_ids))
    if missing:
        problems = Problems()
        for index, contact_id in enumerate(contact_ids):
            if contact_id in missing and len(problems.items) < MAX_REPORTED_IDS:
                problems.add(
                    ["contactIds", str(index)], ErrorCode.NOT_FOUND, "No contact with this id."
                )
        problems.raise_if_any()
    return list(dict.fromkeys(contact_ids))
