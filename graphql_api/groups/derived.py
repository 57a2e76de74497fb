"""Derived membership, maintained: the members of every dynamic and composite group are
stored (``derived_memberships``) and kept exact by the transaction of each change.

A change names the groups it may have changed and, when it concerns only some contacts,
those contacts. ``refresh`` computes what those groups hold now, from the base data (static
memberships and contact fields) with the set-based SQL of ``membership_reads``, limited
to those contacts, and stores the difference. Every entry and exit is a history row and a
``members.added`` / ``members.removed`` change with source DERIVED and its cause, so
e-mail, webhooks and history see derived groups as they see static ones.

Two writers that could disagree are kept apart by the group graph's lock: changes that
only touch some contacts take it shared, changes of a definition take it alone; and the
contacts a refresh is limited to are locked, so a concurrent edit of one of them is seen.
That is PostgreSQL; on SQLite a writing transaction holds the database's write lock from
its start (``kernel.writing``), so no other writer runs beside it at all.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Integer, Select, case, delete, func, or_, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.groups import scratch
from graphql_api.groups.changes import GroupSnapshot, MembersAdded, MembersRemoved
from graphql_api.groups.filters import COLUMNS, CONTACT_FIELDS, BrokenFilter, fields_of
from graphql_api.groups.graph import GroupGraph, load_graph, lock_graph
from graphql_api.groups.membership_reads import (
    broken_groups,
    compute_pairs,
    store_differences,
)
from graphql_api.groups.models import (
    DerivedMembership,
    Group,
    GroupKind,
    GroupLink,
    Membership,
    MembershipAction,
    MembershipSource,
)
from graphql_api.groups.rules import rules_of
from graphql_api.kernel.db import UtcDateTime, utcnow
from graphql_api.kernel.sql import SqlText
from graphql_api.kernel.validation import MAX_ID
from graphql_api.kernel.writing import hold_write_lock

logger = logging.getLogger("graphql_api")

DERIVED = (GroupKind.DYNAMIC, GroupKind.COMPOSITE)
CHUNK = 5_000
"""Ids per statement when contacts are locked by id."""
CONTACTS_PER_CHANGE = 1_000
"""The most contacts one ``MembersAdded`` / ``MembersRemoved`` of a refresh names."""


async def readers_of(session: AsyncSession, group_ids: Iterable[int]) -> set[int]:
    """The groups that read any of ``group_ids``, directly or through others: composites
    that include or exclude them, dynamic groups whose ``memberOf`` names them."""
    frontier: set[int] = set(group_ids)
    found: set[int] = set()
    while frontier:
        rows = await session.scalars(
            select(GroupLink.group_id).where(GroupLink.member_group_id.in_(list(frontier)))
        )
        frontier = set(rows) - found
        found |= frontier
    return found


async def plugin_field_readers(session: AsyncSession) -> set[int]:
    """Dynamic groups whose filter tests a field a plugin adds (a role flag, ...): a change
    of a role group's members can change those fields' values."""
    rows = await session.execute(
        select(Group.id, Group.filter).where(Group.kind == GroupKind.DYNAMIC)
    )
    return {gid for gid, tree in rows if tree and _may_test(fields_of(tree), set(CONTACT_FIELDS))}


def _may_test(fields: set[str] | None, others_than: set[str]) -> bool:
    """Whether a filter testing ``fields`` (None: a broken filter, which may test
    anything) tests a field outside ``others_than``."""
    return fields is None or bool(fields - others_than)


async def lock_contacts(session: AsyncSession, contact_ids: Sequence[int]) -> None:
    """Hold the contacts a refresh is limited to, so an edit of one of them that commits
    meanwhile is waited for and then seen (PostgreSQL; on SQLite the writing transaction
    holds the database's write lock from its start: ``kernel.writing``)."""
    if session.bind.dialect.name != "postgresql":
        return
    ordered = sorted(set(contact_ids))
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        await session.execute(
            select(Contact.id)
            .where(Contact.id.in_(chunk))
            .order_by(Contact.id)
            .with_for_update(key_share=True)
        )


async def refresh(
    session: AsyncSession,
    group_ids: Iterable[int] | None,
    *,
    contact_ids: Sequence[int] | None = None,
    cause: str,
    actor_id: int | None = None,
    record: bool = True,
    job_id: int | None = None,
) -> set[int]:
    """Store what the derived groups among ``group_ids`` (None: every derived group) hold
    now, limited to ``contact_ids`` when given; return the ids of the groups whose members
    changed. With ``record``, each entry and exit is history and a change for the plugins.

    Set-based: what the groups hold now and what differs from the stored rows are computed
    into scratch tables, and moved from there with ``INSERT … SELECT`` and ``DELETE``; only
    the changes for plugins pass through Python, ``CONTACTS_PER_CHANGE`` ids at a time.

    A session made for a bulk load (``info={"bulk_load": True}``) refreshes nothing: the
    loader calls ``rebuild`` once at the end instead."""
    if session.info.get("bulk_load"):
        return set()
    query = select(Group.id).where(Group.kind.in_(DERIVED))
    if group_ids is not None:
        query = query.where(Group.id.in_(list(group_ids)))
    ids = sorted(await session.scalars(query))
    if not ids or (contact_ids is not None and not contact_ids):
        return set()
    if contact_ids is None and len(ids) > 1:
        # Whole groups one at a time keeps the scratch tables at one group's size.
        moved: set[int] = set()
        for group_id in ids:
            moved |= await refresh(
                session, [group_id], cause=cause, actor_id=actor_id, record=record, job_id=job_id
            )
        return moved
    graph = await load_graph(session, ids)
    broken = broken_groups(graph, rules_of(session).filter_fields)
    if broken:
        # Such a group keeps the members it had; every other group, and the change, go on.
        for group_id, reason in broken.items():
            logger.warning("derived group %s is not refreshed: %s", group_id, reason)
        ids = [i for i in ids if i not in broken]
        graph = GroupGraph({i: n for i, n in graph.nodes.items() if i not in broken})
        if not ids:
            return set()
    # A failure leaves the run's rows to the rollback: a statement after it would fail
    # too on PostgreSQL and hide the error (a deadlock the caller would try again).
    run = await scratch.begin_run(session)
    candidates: scratch.Candidates | Sequence[int] | None = None
    if contact_ids is not None:
        candidates = await scratch.fill_candidates(session, run, contact_ids)
    await store_differences(session, graph, ids, candidates, run)
    counts = await _count(session, run)
    if counts:
        await _store(session, run, counts)
        if record:
            await _record(session, run, counts, cause, actor_id, job_id)
    await scratch.end_run(session, run, candidates or ())
    return set(counts)


Counts = dict[int, tuple[int, int]]
"""Per group id: how many contacts entered and how many left."""


async def _count(session: AsyncSession, run: int) -> Counts:
    """How many contacts entered and left each group in the run."""
    rows = await session.execute(
        text(
            f"SELECT group_id, entered, COUNT(*) FROM {scratch.DELTA} WHERE run = :run "
            "GROUP BY group_id, entered"
        ),
        {"run": run},
    )
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for group_id, entered, number in rows:
        counts[group_id][0 if entered else 1] = number
    return {group_id: (n[0], n[1]) for group_id, n in counts.items()}


async def _store(session: AsyncSession, run: int, counts: Counts) -> None:
    """Apply the run's entries and exits to the stored rows and the member counts."""
    changed = sorted(counts)
    if session.bind.dialect.name == "postgresql":
        # The changed groups' rows are locked in id order before any membership row, so two
        # transactions refreshing the same groups wait for each other instead of deadlocking.
        await session.execute(
            select(Group.id).where(Group.id.in_(changed)).order_by(Group.id).with_for_update()
        )
    sql = SqlText(session.bind.dialect.name)
    at = sql.bind(run, Integer())
    if any(left for _, left in counts.values()):
        await session.execute(
            sql.statement(
                "DELETE FROM derived_memberships WHERE (group_id, contact_id) IN "
                f"(SELECT group_id, contact_id FROM {scratch.DELTA} "
                f"WHERE run = {at} AND entered = 0)"
            )
        )
    if any(entered for entered, _ in counts.values()):
        moment = sql.bind(utcnow(), UtcDateTime())
        await session.execute(
            sql.statement(
                "INSERT INTO derived_memberships (group_id, contact_id, since) "
                f"SELECT group_id, contact_id, {moment} FROM {scratch.DELTA} "
                f"WHERE run = {at} AND entered = 1 ORDER BY group_id, contact_id"
            )
        )
    delta = case(
        *((Group.id == g, entered - left) for g, (entered, left) in counts.items()), else_=0
    )
    await session.execute(
        update(Group).where(Group.id.in_(changed)).values(member_count=Group.member_count + delta)
    )


async def _record(
    session: AsyncSession,
    run: int,
    counts: Counts,
    cause: str,
    actor_id: int | None,
    job_id: int | None,
) -> None:
    """History rows for the run's entries and exits, in one statement; then the changes for
    the plugins, per group and up to ``CONTACTS_PER_CHANGE`` contacts."""
    sql = SqlText(session.bind.dialect.name)
    at = sql.bind(run, Integer())
    action = (
        f"CASE WHEN entered = 1 THEN {sql.bind(MembershipAction.ADDED.value)} "
        f"ELSE {sql.bind(MembershipAction.REMOVED.value)} END"
    )
    await session.execute(
        sql.statement(
            "INSERT INTO membership_events "
            "(group_id, contact_id, action, source, actor_id, occurred_at, cause) "
            f"SELECT group_id, contact_id, {action}, {sql.bind(MembershipSource.DERIVED.value)}, "
            f"{sql.bind(actor_id, Integer())}, {sql.bind(utcnow(), UtcDateTime())}, "
            # In the scratch table's order: sorting first cost a third more (bench/).
            f"{sql.bind(cause[:300])} FROM {scratch.DELTA} WHERE run = {at}"
        )
    )
    groups = {
        g.id: GroupSnapshot.of(g)
        for g in await session.scalars(select(Group).where(Group.id.in_(list(counts))))
    }
    rules = rules_of(session)
    postgres = session.bind.dialect.name == "postgresql"
    ids = "array_agg(contact_id)" if postgres else "json_group_array(contact_id)"
    per = sql.bind(CONTACTS_PER_CHANGE, Integer())
    pages = await session.execute(
        sql.statement(
            f"SELECT group_id, entered, {ids} FROM (SELECT group_id, entered, contact_id, "
            "(ROW_NUMBER() OVER (PARTITION BY group_id, entered ORDER BY contact_id) - 1) "
            f"/ {per} AS page FROM {scratch.DELTA} WHERE run = {at}) AS numbered "
            "GROUP BY group_id, entered, page ORDER BY group_id, entered DESC, page"
        )
    )
    for group_id, entered, contact_ids in pages:
        contacts = tuple(sorted(contact_ids if postgres else json.loads(contact_ids)))
        change_type = MembersAdded if entered else MembersRemoved
        change = change_type(
            groups[group_id], contacts, MembershipSource.DERIVED, actor_id, cause, job_id
        )
        await rules.changed(session, change)
    await session.flush()


async def after_contacts_changed(
    session: AsyncSession,
    contact_ids: Sequence[int],
    cause: str,
    actor_id: int | None,
    changed: Iterable[str] | None = None,
) -> None:
    """Contacts' fields changed (``changed``: those columns; None: any, as when contacts
    are made or erased). Only a dynamic group testing one of those fields (or a field a
    plugin computes) can see them differently; the groups reading a group that did, follow.
    An edit of fields no filter tests costs nothing here."""
    await lock_contacts(session, contact_ids)
    testing = await dynamic_groups_testing(session, None if changed is None else set(changed))
    await _refresh_with_readers(session, testing, contact_ids, cause, actor_id)


async def _refresh_with_readers(
    session: AsyncSession,
    testing: set[int],
    contact_ids: Sequence[int],
    cause: str,
    actor_id: int | None,
) -> None:
    """Refresh the dynamic groups ``testing`` for these contacts, then the groups reading
    any of them that changed."""
    if not testing:
        return
    moved = await refresh(session, testing, contact_ids=contact_ids, cause=cause, actor_id=actor_id)
    if moved:
        readers = await readers_of(session, moved)
        await refresh(session, readers, contact_ids=contact_ids, cause=cause, actor_id=actor_id)


async def dynamic_groups_testing(session: AsyncSession, columns: set[str] | None) -> set[int]:
    """Dynamic groups whose filter tests any of these contact columns (None: any column),
    or a field a plugin adds, whose value may follow from any column."""

    def tests(fields: set[str] | None) -> bool:
        tested = {COLUMNS[f] for f in fields or () if f in COLUMNS}
        return columns is None or bool(tested & columns) or _may_test(fields, set(CONTACT_FIELDS))

    return await _dynamic_groups_where(session, tests)


async def dynamic_groups_testing_fields(session: AsyncSession, names: set[str]) -> set[int]:
    """Dynamic groups whose filter tests any of the filter fields ``names``, and those whose
    stored filter is no filter tree at all (broken: it may test anything)."""
    return await _dynamic_groups_where(
        session, lambda fields: fields is None or bool(fields & names)
    )


async def _dynamic_groups_where(
    session: AsyncSession, tests: Callable[[set[str] | None], bool]
) -> set[int]:
    """The dynamic groups whose tested fields (None: a broken filter) pass ``tests``."""
    rows = await session.execute(
        select(Group.id, Group.filter).where(Group.kind == GroupKind.DYNAMIC)
    )
    return {group_id for group_id, tree in rows if tests(fields_of(tree) if tree else set())}


async def contacts_changed(
    session: AsyncSession,
    contact_ids: Iterable[int],
    *,
    fields: Iterable[str],
    cause: str | None = None,
    actor_id: int | None = None,
) -> None:
    """Tell the core that the values of filter ``fields`` may have changed for these
    contacts, because data a field's ``compile`` reads changed (a plugin's own table):
    the dynamic groups whose filters test one of ``fields`` (and any whose stored filter is
    broken) are refreshed for these contacts, then the groups reading a group that changed.
    Each entry and exit is a history row and a DERIVED ``MembersAdded`` / ``MembersRemoved``
    change with ``cause`` (default: the fields and the contacts, in words) and
    ``actor_id``, as for any other change. Call it after the data is written, in the same
    transaction: a plugin's mutation (``run_mutation``), ``apply_change`` or ``deliver``.

    - ``fields``: the names of the filter fields whose values may follow from the data
      that changed, the plugin's or the core's; a name that is no filter field of this
      application raises ``ValueError`` (before anything is done), a lone string
      ``TypeError``; an empty collection refreshes nothing.
    - ``contact_ids``: any number (thousands are one set-based refresh, not one per
      contact); ids of no contact are ignored; an empty collection does nothing, not a
      statement.

    Locks, as the core's own changes take them: the group graph's, shared, then the
    contacts, in id order (PostgreSQL), so a change of a group's definition or an edit of
    one of these contacts that runs meanwhile is waited for and then seen. On SQLite the
    refresh must hold the database's write lock before it reads: a transaction declared
    writing (``run_mutation`` declares the transaction of every mutation) holds it from
    its start, and one that has written holds it since its first write. A transaction that
    has neither (the worker's, in ``deliver``, before its first write) is declared here
    (``BEGIN IMMEDIATE``, waiting for another writer like any writer); it cannot be
    declared from its start any more, so what the caller read before this call was read
    outside the lock: write before you call this, and do not rely on such earlier reads.
    """
    names = _filter_field_names(session, fields)
    ids = _contact_id_list(contact_ids)
    if not ids or not names:
        return
    await hold_write_lock(session)
    await lock_graph(session, shared=True)
    await lock_contacts(session, ids)
    testing = await dynamic_groups_testing_fields(session, names)
    if cause is None:
        who = f"contact {ids[0]}'s" if len(ids) == 1 else f"{len(ids)} contacts'"
        cause = f"{who} {', '.join(sorted(names))} changed"
    await _refresh_with_readers(session, testing, ids, cause, actor_id)


def _filter_field_names(session: AsyncSession, fields: Iterable[str]) -> set[str]:
    if isinstance(fields, str):
        raise TypeError(f"fields is a collection of filter field names, e.g. {{{fields!r}}}")
    names = set(fields)
    known = rules_of(session).filter_fields
    unknown = sorted(repr(name) for name in names if name not in known)
    if unknown:
        raise ValueError(
            f"contacts_changed: no filter field {', '.join(unknown)} in this application; "
            f"its filter fields are {', '.join(known)}"
        )
    return names


def _contact_id_list(contact_ids: Iterable[int]) -> list[int]:
    """The ids, each once, in order; ids no contact can have (out of the id range) left
    out, as the ids of no contact are."""
    if isinstance(contact_ids, int | str | bytes):
        raise TypeError("contact_ids is a collection of contact ids, e.g. [17]")
    ids = set()
    for contact_id in contact_ids:
        if not isinstance(contact_id, int) or isinstance(contact_id, bool):
            raise TypeError(f"a contact id is an int, not {contact_id!r}")
        ids.add(contact_id)
    return sorted(i for i in ids if 0 < i <= MAX_ID)


async def after_members_changed(
    session: AsyncSession,
    group: Group,
    contact_ids: Sequence[int],
    cause: str,
    actor_id: int | None,
    job_id: int | None = None,
) -> None:
    """A static group's members changed: the groups reading it may too, and with a role,
    the dynamic groups testing role fields."""
    readers = await readers_of(session, [group.id])
    if group.neighbourhood_role is not None:
        plugin_readers = await plugin_field_readers(session)
        readers |= plugin_readers | await readers_of(session, plugin_readers)
    if not readers:
        return
    await lock_contacts(session, contact_ids)
    await refresh(
        session, readers, contact_ids=contact_ids, cause=cause, actor_id=actor_id, job_id=job_id
    )


async def after_definition_changed(
    session: AsyncSession, group: Group, cause: str, actor_id: int | None, *, role_changed: bool
) -> None:
    """A group's definition (composition, exclusions, filter, kind or role) changed:
    recompute it and every group reading it, whole."""
    affected = {group.id} | await readers_of(session, [group.id])
    if role_changed:
        plugin_readers = await plugin_field_readers(session)
        affected |= plugin_readers | await readers_of(session, plugin_readers)
    await refresh(session, affected, cause=cause, actor_id=actor_id)


def _dangling(*columns: Any) -> Select[Any]:
    """Stored derived rows naming no derived group or no contact: the tables have no
    foreign keys (migration 0009), so ``differences`` looks and ``rebuild`` clears."""
    return (
        select(*columns)
        .outerjoin(Group, Group.id == DerivedMembership.group_id)
        .outerjoin(Contact, Contact.id == DerivedMembership.contact_id)
        .where(or_(Group.id.is_(None), Contact.id.is_(None), Group.kind.not_in(DERIVED)))
    )


async def rebuild(session: AsyncSession, *, cause: str, record: bool) -> set[int]:
    """Make every stored derived row and every member count exact, computed from scratch;
    returns the groups whose members changed (none, when all was exact)."""
    stray = _dangling(DerivedMembership.group_id, DerivedMembership.contact_id).subquery()
    await session.execute(
        delete(DerivedMembership).where(
            tuple_(DerivedMembership.group_id, DerivedMembership.contact_id).in_(select(stray))
        )
    )
    changed = await refresh(session, None, cause=cause, record=record)
    for kind, rows in ((GroupKind.STATIC, Membership), (None, DerivedMembership)):
        counted = select(func.count()).where(rows.group_id == Group.id).scalar_subquery()
        which = Group.kind == kind if kind is not None else Group.kind.in_(DERIVED)
        await session.execute(update(Group).where(which).values(member_count=counted))
    return changed


async def differences(session: AsyncSession) -> list[str]:
    """Every way the stored rows and counts differ from a computation from scratch, in
    words; there should be none."""
    found = []
    # Stored rows name groups and contacts without foreign keys (migration 0009).
    dangling = await session.execute(
        _dangling(DerivedMembership.group_id, DerivedMembership.contact_id).order_by(
            DerivedMembership.group_id, DerivedMembership.contact_id
        )
    )
    found += [f"stored row ({g}, {c}) names no derived group or no contact" for g, c in dangling]
    groups = list(await session.execute(select(Group.id, Group.kind, Group.member_count)))
    for group_id, kind, count in groups:
        rows = DerivedMembership if kind in DERIVED else Membership
        stored = set(
            await session.scalars(select(rows.contact_id).where(rows.group_id == group_id))
        )
        if kind in DERIVED:
            graph = await load_graph(session, [group_id])
            try:
                now = {c for _, c in await compute_pairs(session, graph, [group_id], None)}
            except BrokenFilter as error:
                found.append(f"group {group_id}: {error}")
                continue
            found += [f"group {group_id}: contact {c} is missing" for c in sorted(now - stored)]
            found += [
                f"group {group_id}: contact {c} should not be in it" for c in sorted(stored - now)
            ]
        if count != len(stored):
            found.append(f"group {group_id}: member count {count}, but {len(stored)} members")
    return found
