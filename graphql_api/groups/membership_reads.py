"""Who is in which group: read from the stored memberships, or computed with set-based SQL.

Reads (``members_query``, ``member_counts``, ``groups_containing``, ``groups_of_contacts``)
use the stored rows: ``memberships`` for static groups, ``derived_memberships`` for the
others, which ``groups.derived`` keeps exact in every writing transaction, and each
group's maintained ``member_count``. Computing from the base data is for keeping those
rows exact, for explanations (``membership_path``) and for previews of a filter.

A group's members are compiled into one SQL statement: the group graph (a recursive CTE
over group ids) becomes one CTE per group, each a set of contact ids: static groups read
their memberships, dynamic groups their compiled filter, composites combine their parts
with UNION (ANY) or INTERSECT (ALL) and EXCEPT for exclusions. A shared sub-group is one
CTE however often it is used.

Given ``candidates`` (a few contacts), every leaf is restricted to them first, which turns
"is this contact in these groups?" into a cheap query even for very large groups.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Integer, Select, and_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CTE

from graphql_api.contacts.models import Contact
from graphql_api.contacts.search import contact_search
from graphql_api.groups.filters import (
    BrokenFilter,
    FilterField,
    compile_filter,
    stored_filter,
    validate_filter,
)
from graphql_api.groups.graph import GroupGraph, GroupNode, load_graph
from graphql_api.groups.models import (
    CompositionMode,
    DerivedMembership,
    Group,
    GroupKind,
    Membership,
)
from graphql_api.groups.rules import rules_of
from graphql_api.groups.scratch import CANDIDATES, DELTA, Candidates
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.kernel.sql import SqlText, any_of


def member_sets(
    graph: GroupGraph,
    sql: SqlText,
    fields: Mapping[str, FilterField],
    candidates: Sequence[int] | Candidates | None = None,
) -> list[tuple[str, str]]:
    """``(name, SQL)`` of a set of contact ids named ``g<id>`` for every group in ``graph``,
    each after the sets it reads. With ``candidates`` (a few ids, or the many of a scratch
    run), every set is limited to those contacts.
    """
    only = limited_to(sql, candidates)
    definitions = []
    for group_id in graph.order_from_leaves():
        node = graph.nodes[group_id]
        if node.kind is GroupKind.DYNAMIC and node.filter:
            condition = compile_filter(usable_filter(node, fields), sql, _set_of, fields)
            body = (
                f"SELECT contacts.id AS contact_id FROM contacts WHERE {condition}"
                + only.format(column="contacts.id")
            )
        elif node.kind is GroupKind.COMPOSITE and node.included:
            parts = [f"SELECT contact_id FROM g{i}" for i in node.included]
            operator = " INTERSECT " if node.mode is CompositionMode.ALL else " UNION "
            body = operator.join(parts)
            if node.excluded:
                if len(parts) > 1:
                    # SQLite cannot nest compound selects: name the combination first.
                    definitions.append((f"g{group_id}_in", body))
                    body = f"SELECT contact_id FROM g{group_id}_in"
                body += "".join(f" EXCEPT SELECT contact_id FROM g{i}" for i in node.excluded)
        else:
            group = sql.bind(group_id, Integer())
            body = f"SELECT contact_id FROM memberships WHERE group_id = {group}" + only.format(
                column="contact_id"
            )
        definitions.append((f"g{group_id}", body))
    return definitions


def limited_to(sql: SqlText, candidates: Sequence[int] | Candidates | None) -> str:
    """`` AND {column} IN (...)`` naming the candidates (a few bound, or a scratch run's),
    with ``{column}`` to fill in; nothing for None."""
    if isinstance(candidates, Candidates):
        run = sql.bind(candidates.run, Integer())
        return f" AND {{column}} IN (SELECT contact_id FROM {CANDIDATES} WHERE run = {run})"
    if candidates is not None:
        return f" AND {{column}} IN ({sql.ints(list(candidates))})"
    return ""


def usable_filter(node: GroupNode, fields: Mapping[str, FilterField]) -> dict[str, Any]:
    """A dynamic group's stored filter, validated again and checked against the groups it
    is linked to, so that compiling it cannot fail; ``BrokenFilter`` when it would."""
    tree, named = stored_filter(node.name, node.filter, fields)
    if not named <= set(node.filtered_on):
        raise BrokenFilter(
            f"The stored filter of group {node.name!r} names groups it is not linked to "
            f"({', '.join(map(str, sorted(named - set(node.filtered_on))))}); change the filter."
        )
    return tree


def broken_groups(graph: GroupGraph, fields: Mapping[str, FilterField]) -> dict[int, str]:
    """The groups of ``graph`` whose members cannot be computed, each with why: a dynamic
    group whose stored filter cannot be used, and every group built from such a group."""
    broken: dict[int, str] = {}
    for group_id in graph.order_from_leaves():
        node = graph.nodes[group_id]
        if node.kind is GroupKind.DYNAMIC and node.filter:
            try:
                usable_filter(node, fields)
            except BrokenFilter as error:
                broken[group_id] = str(error)
        elif any(i in broken for i in node.dependencies):
            cause = next(i for i in node.dependencies if i in broken)
            broken[group_id] = (
                f"group {node.name!r} is built from one that is broken: " + (broken[cause])
            )
    return broken


def _set_of(group_id: int) -> str:
    return f"SELECT contact_id FROM g{group_id}"


def with_clause(definitions: list[tuple[str, str]]) -> str:
    return "WITH " + ",\n".join(f"{name} AS ({body})" for name, body in definitions)


def as_ctes(definitions: list[tuple[str, str]], sql: SqlText) -> dict[str, CTE]:
    """The sets as CTEs for a query built with SQLAlchemy, rendered at its top level.

    At the top, PostgreSQL inlines each set into the query that reads it and plans one
    statement; a ``WITH`` inside an ``IN (...)`` would be planned apart, often badly.
    """
    return {name: sql.contact_ids(body).cte(name) for name, body in definitions}


async def members_query(
    session: AsyncSession, group_id: int, search: str | None = None
) -> Select[tuple[Contact]]:
    """The contacts in an existing group, read through the index of its stored rows."""
    group = await session.get(Group, group_id)
    return members_of(group_id, group.kind if group else GroupKind.STATIC, search)


def members_of(group_id: int, kind: GroupKind, search: str | None = None) -> Select[tuple[Contact]]:
    """The contacts in group ``group_id`` of ``kind``: a static group's links, or the
    stored rows of a derived group's membership."""
    rows = DerivedMembership if kind is not GroupKind.STATIC else Membership
    query = select(Contact).join(
        rows, and_(rows.contact_id == Contact.id, rows.group_id == group_id)
    )
    return query.where(contact_search(search)) if search else query


def member_ids(group_id: int) -> Select[tuple[int]]:
    """The ids of the contacts in group ``group_id``, whatever its kind (a static group's
    links and a derived group's stored rows; a group has one or the other), for a
    set-based ``IN`` or ``INSERT ... SELECT`` that need not know the kind."""
    static = select(Membership.contact_id).where(Membership.group_id == group_id)
    derived = select(DerivedMembership.contact_id).where(DerivedMembership.group_id == group_id)
    return select(static.union_all(derived).subquery().c.contact_id)


COMPOUND_LIMIT = 400
"""Groups per statement when one ``SELECT`` per group is combined: SQLite allows 500."""


async def _per_group(
    session: AsyncSession,
    graph: GroupGraph,
    group_ids: Iterable[int],
    select_from_set: str,
    candidates: Sequence[int] | None = None,
) -> list[Any]:
    """Rows of ``select_from_set`` (with ``{id}`` for a group's id) for each group, combined
    with UNION ALL: one statement, or one per 400 groups when there are more."""
    present = [i for i in dict.fromkeys(group_ids) if i in graph.nodes]
    rows: list[Any] = []
    for start in range(0, len(present), COMPOUND_LIMIT):
        sql = SqlText(session.bind.dialect.name)
        sets = with_clause(member_sets(graph, sql, rules_of(session).filter_fields, candidates))
        chunk = present[start : start + COMPOUND_LIMIT]
        union = " UNION ALL ".join(select_from_set.format(id=i) for i in chunk)
        rows += (await session.execute(sql.statement(f"{sets} {union}"))).all()
    return rows


async def member_counts(session: AsyncSession, group_ids: Sequence[int]) -> dict[int, int]:
    """Number of members of each group: its maintained count, one statement for all."""
    counts: dict[int, int] = dict.fromkeys(group_ids, 0)
    rows = await session.execute(
        select(Group.id, Group.member_count).where(Group.id.in_(list(group_ids)))
    )
    counts.update({group_id: n for group_id, n in rows})
    return counts


def _stored_pairs(
    group_ids: Sequence[int] | None, contact_ids: Sequence[int]
) -> Select[tuple[int, int]]:
    """The stored (group id, contact id) memberships of these contacts, static and
    derived, in the given groups (any group for None)."""
    parts = []
    for rows in (Membership, DerivedMembership):
        part = select(rows.group_id, rows.contact_id).where(rows.contact_id.in_(contact_ids))
        if group_ids is not None:
            part = part.where(rows.group_id.in_(group_ids))
        parts.append(part)
    return union_all(*parts)  # type: ignore[return-value]


async def groups_containing(
    session: AsyncSession, group_ids: Iterable[int], contact_ids: Sequence[int]
) -> set[tuple[int, int]]:
    """Which (group id, contact id) pairs are memberships, derived groups included."""
    group_ids = list(group_ids)
    if not group_ids or not contact_ids:
        return set()
    rows = await session.execute(_stored_pairs(group_ids, list(contact_ids)))
    return {(group_id, contact_id) for group_id, contact_id in rows}


async def compute_pairs(
    session: AsyncSession,
    graph: GroupGraph,
    group_ids: Iterable[int],
    contact_ids: Sequence[int] | None,
) -> set[tuple[int, int]]:
    """The (group id, contact id) memberships of ``group_ids`` computed from the base data
    (static memberships, contact fields), limited to ``contact_ids`` unless None."""
    candidates = list(dict.fromkeys(contact_ids)) if contact_ids is not None else None
    select_pairs = "SELECT {id}, contact_id FROM g{id}"
    rows = await _per_group(session, graph, group_ids, select_pairs, candidates)
    return {(group_id, contact_id) for group_id, contact_id in rows}


def _leaves_read_once(
    sets: list[tuple[str, str]],
    graph: GroupGraph,
    sql: SqlText,
    candidates: Sequence[int] | Candidates,
) -> list[tuple[str, str]]:
    """``sets`` with the static groups' sets read from one set of the candidates' links to
    any of them: an index lookup per candidate, where a set per group looked each
    candidate up in each group (static groups times candidates)."""
    static = [i for i, node in graph.nodes.items() if node.kind is GroupKind.STATIC]
    if len(static) < 2:
        return sets
    links = (
        f"SELECT group_id, contact_id FROM memberships WHERE group_id IN ({sql.ints(static)})"
        + limited_to(sql, candidates).format(column="contact_id")
    )
    bodies = {
        f"g{i}": f"SELECT contact_id FROM candidate_links WHERE group_id = {i}" for i in static
    }
    return [("candidate_links", links)] + [(name, bodies.get(name, body)) for name, body in sets]


async def store_differences(
    session: AsyncSession,
    graph: GroupGraph,
    group_ids: Sequence[int],
    candidates: Sequence[int] | Candidates | None,
    run: int,
) -> None:
    """Write into the scratch table ``DELTA`` for ``run`` how the memberships of
    ``group_ids`` computed from the base data differ from the stored ones (``entered`` 1:
    computed, not stored; 0: stored, no longer computed), limited to ``candidates`` unless
    None. One statement per 400 groups: what the groups hold now is computed once, inside
    it, and never leaves the database."""
    for start in range(0, len(group_ids), COMPOUND_LIMIT):
        sql = SqlText(session.bind.dialect.name)
        chunk = list(group_ids[start : start + COMPOUND_LIMIT])
        sets = member_sets(graph, sql, rules_of(session).filter_fields, candidates)
        if candidates is not None:
            sets = _leaves_read_once(sets, graph, sql, candidates)
        now = " UNION ALL ".join(f"SELECT {i} AS group_id, contact_id FROM g{i}" for i in chunk)
        at = sql.bind(run, Integer())
        stored = f"d.group_id IN ({sql.ints(chunk)})" + limited_to(sql, candidates).format(
            column="d.contact_id"
        )
        same = "n.group_id = d.group_id AND n.contact_id = d.contact_id"
        await session.execute(
            sql.statement(
                f"INSERT INTO {DELTA} (run, group_id, contact_id, entered) "
                + with_clause([*sets, ("now_pairs", now)])
                + f" SELECT {at}, n.group_id, n.contact_id, 1 FROM now_pairs n WHERE NOT EXISTS "
                f"(SELECT 1 FROM derived_memberships d WHERE {same}) "
                f"UNION ALL SELECT {at}, d.group_id, d.contact_id, 0 FROM derived_memberships d "
                f"WHERE {stored} AND NOT EXISTS (SELECT 1 FROM now_pairs n WHERE {same})"
            )
        )


async def membership_path(
    session: AsyncSession, group_id: int, contact_id: int
) -> list[int] | None:
    """Why a contact is in a group: the group ids from this group down to the static group
    or dynamic filter that holds the contact; None when it is not a member."""
    graph = await load_graph(session, [group_id])
    holding = {g for g, _ in await compute_pairs(session, graph, graph.nodes, [contact_id])}
    if group_id not in holding:
        return None
    path = [group_id]
    node = graph.nodes[group_id]
    while node.kind is GroupKind.COMPOSITE:
        # Every included group on the way holds the contact in an ALL composite, at least
        # one in an ANY composite; the first in the caller's order is the explanation.
        node = graph.nodes[next(i for i in node.included if i in holding)]
        path.append(node.id)
    return path


async def member_pairs(
    session: AsyncSession, pairs: Sequence[tuple[int, int]]
) -> set[tuple[int, int]]:
    """Which of the (group id, contact id) pairs are memberships."""
    if not pairs:
        return set()
    found = await groups_containing(session, {g for g, _ in pairs}, [c for _, c in pairs])
    return found & set(pairs)


async def groups_of_contacts(
    session: AsyncSession, contact_ids: Sequence[int]
) -> dict[int, list[Group]]:
    """Every group each contact is in, derived ones included, by name."""
    rows = await session.execute(_stored_pairs(None, list(contact_ids)))
    pairs = {(group_id, contact_id) for group_id, contact_id in rows}
    groups = {
        group.id: group
        for group in await session.scalars(select(Group).where(Group.id.in_({g for g, _ in pairs})))
    }
    found: dict[int, list[Group]] = defaultdict(list)
    for group_id, contact_id in pairs:
        found[contact_id].append(groups[group_id])
    return {
        contact_id: sorted(found[contact_id], key=lambda g: (g.name_key, g.id))
        for contact_id in contact_ids
    }


async def group_ids_of_contact(session: AsyncSession, contact_id: int) -> list[int]:
    """Ids of every group a contact is in (for ``groups(filter: {hasMemberId})``)."""
    groups = await groups_of_contacts(session, [contact_id])
    return [group.id for group in groups[contact_id]]


async def memberships_of_contacts(
    session: AsyncSession, contact_ids: Sequence[int], *, show_on_contact_only: bool = False
) -> dict[int, list[Membership]]:
    """Each contact's explicit links, oldest first."""
    query = (
        select(Membership)
        .where(Membership.contact_id.in_(contact_ids))
        .order_by(Membership.member_since, Membership.group_id)
    )
    if show_on_contact_only:
        query = query.join(Group, Group.id == Membership.group_id).where(
            Group.show_on_contact.is_(True)
        )
    found: dict[int, list[Membership]] = defaultdict(list)
    for membership in await session.scalars(query):
        found[membership.contact_id].append(membership)
    return {contact_id: found[contact_id] for contact_id in contact_ids}


async def links(
    session: AsyncSession, group_id: int, contact_ids: Sequence[int]
) -> list[Membership]:
    """The explicit links of these contacts to a static group, in the order given."""
    rows = await session.scalars(
        select(Membership).where(
            Membership.group_id == group_id, any_of(Membership.contact_id, contact_ids)
        )
    )
    found = {link.contact_id: link for link in rows}
    return [found[c] for c in contact_ids if c in found]


async def filter_contacts(
    session: AsyncSession, query: Select[tuple[Contact]], tree: dict[str, Any]
) -> Select[tuple[Contact]]:
    """``query`` narrowed to the contacts matching a filter; a filter that does not
    validate, or names a group that does not exist, raises ``UserInputError``."""
    fields = rules_of(session).filter_fields
    tree, groups = validate_filter(tree, fields)
    graph = await load_graph(session, groups)
    if set(groups) - set(graph.nodes):
        raise UserInputError.single(
            ["filter"], ErrorCode.NOT_FOUND, "memberOf names a group that does not exist."
        )
    sql = SqlText(session.bind.dialect.name)
    ctes = as_ctes(member_sets(graph, sql, fields), sql)
    condition = compile_filter(tree, sql, _set_of, fields)
    return query.add_cte(*ctes.values()).where(sql.statement(condition))
