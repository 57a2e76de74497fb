"""Who is in which group (graphql_api.groups.membership_reads), on the test database:
static, dynamic and composite groups (union, intersection, exclusions, nesting), counts,
the pairs asked about and no others, why a contact is a member, each contact's groups and
explicit links in their order, and no statement when there is nothing to ask."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from graphql_api.contacts.models import Contact
from graphql_api.groups.derived import differences, rebuild
from graphql_api.groups.graph import load_graph
from graphql_api.groups.lifecycle import create_group
from graphql_api.groups.membership_reads import (
    compute_pairs,
    group_ids_of_contact,
    groups_containing,
    groups_of_contacts,
    member_counts,
    member_pairs,
    member_sets,
    members_query,
    membership_path,
    memberships_of_contacts,
)
from graphql_api.groups.membership_writes import add_members
from graphql_api.groups.models import (
    CompositionMode,
    DerivedMembership,
    Group,
    GroupKind,
    GroupLink,
    LinkRole,
    Membership,
    MembershipSource,
)
from graphql_api.groups.rules import CORE_RULES
from graphql_api.kernel.access import SYSTEM
from graphql_api.kernel.sql import SqlText

Sessions = async_sessionmaker[AsyncSession]
PEOPLE = ("Aa", "Bb", "Cc", "Dd", "Ee")


@dataclass
class World:
    """Five contacts (Aa, Bb, Dd live in Zwolle) and groups built from them:

    - static: ``s1`` {Aa, Bb}, ``s2`` {Bb, Cc}, ``s3`` {Cc, Dd}, ``e1`` {Bb}, ``e2`` {Cc},
      ``empty`` {};
    - dynamic: ``zwolle`` (city) {Aa, Bb, Dd}; ``picked`` (in s1, not in e1) {Aa};
    - composite: ``union`` s1 | s2 - e1 - e2 = {Aa}; ``both`` s1 & s2 = {Bb};
      ``three`` s1 & zwolle & s2 - e2 = {Bb}; ``only`` s3 - e2 = {Dd};
      ``nested`` union | zwolle = {Aa, Bb, Dd}; ``not_bb`` zwolle - e1 = {Aa, Dd}.
    """

    contact: dict[str, int]
    group: dict[str, int]

    def name_of(self, contact_id: int) -> str:
        return next(name for name, i in self.contact.items() if i == contact_id)


STATIC = {"s1": ["Aa", "Bb"], "s2": ["Bb", "Cc"], "s3": ["Cc", "Dd"], "e1": ["Bb"], "e2": ["Cc"]}
STATIC |= {"empty": []}
COMPOSITES: dict[str, tuple[list[str], list[str], CompositionMode]] = {
    "union": (["s1", "s2"], ["e1", "e2"], CompositionMode.ANY),
    "both": (["s1", "s2"], [], CompositionMode.ALL),
    "three": (["s1", "zwolle", "s2"], ["e2"], CompositionMode.ALL),
    "only": (["s3"], ["e2"], CompositionMode.ANY),
    "nested": (["union", "zwolle"], [], CompositionMode.ANY),
    "not_bb": (["zwolle"], ["e1"], CompositionMode.ANY),
}
NAMES = {"zwolle": "Zwolle", "not_bb": "Not Bb"}


@pytest.fixture
async def world(sessions: Sessions) -> World:
    """The rows the group services write for these groups, written directly (it is quick)."""
    async with sessions() as session, session.begin():
        contacts = [
            Contact(last_name=name, city="Zwolle" if name in ("Aa", "Bb", "Dd") else "Ede")
            for name in PEOPLE
        ]
        session.add_all(contacts)
        await session.flush()
        c = {contact.last_name: contact.id for contact in contacts}
        rows: dict[str, Group] = {}

        def add(key: str, **values: Any) -> Group:
            name = NAMES.get(key, key.title())
            rows[key] = Group(name=name, name_key=name.lower(), **values)
            session.add(rows[key])
            return rows[key]

        for key in STATIC:
            add(key, kind=GroupKind.STATIC)
        add("zwolle", kind=GroupKind.DYNAMIC, filter=_city("zwolle"))
        await session.flush()
        add("picked", kind=GroupKind.DYNAMIC, filter=_picked(rows["s1"].id, rows["e1"].id))
        for key, (_, _, mode) in COMPOSITES.items():
            add(key, kind=GroupKind.COMPOSITE, composition_mode=mode)
        await session.flush()
        session.add_all(
            Membership(group_id=rows[key].id, contact_id=c[name], source=MembershipSource.API)
            for key, names in STATIC.items()
            for name in names
        )
        links = [("picked", LinkRole.FILTER, ["s1", "e1"])]
        for key, (included, excluded, _) in COMPOSITES.items():
            links += [(key, LinkRole.INCLUDE, included), (key, LinkRole.EXCLUDE, excluded)]
        session.add_all(
            GroupLink(
                group_id=rows[key].id,
                member_group_id=rows[part].id,
                role=role,
                position=position,
            )
            for key, role, parts in links
            for position, part in enumerate(parts)
        )
        await session.flush()
        await rebuild(session, cause="the world was written", record=False)
    return World(c, {key: group.id for key, group in rows.items()})


EXPECTED = {
    "s1": ["Aa", "Bb"],
    "s2": ["Bb", "Cc"],
    "s3": ["Cc", "Dd"],
    "e1": ["Bb"],
    "e2": ["Cc"],
    "empty": [],
    "zwolle": ["Aa", "Bb", "Dd"],
    "union": ["Aa"],
    "both": ["Bb"],
    "three": ["Bb"],
    "only": ["Dd"],
    "nested": ["Aa", "Bb", "Dd"],
    "not_bb": ["Aa", "Dd"],
    "picked": ["Aa"],
}


def _city(city: str) -> dict[str, Any]:
    return {"condition": {"field": "city", "op": "EQ", "value": city}}


def _picked(member_of: int, not_member_of: int) -> dict[str, Any]:
    """Members of one group who are not in another, as a dynamic filter."""
    return {
        "all": [
            {"condition": {"field": "memberOf", "op": "EQ", "value": str(member_of)}},
            {"condition": {"field": "memberOf", "op": "NEQ", "value": str(not_member_of)}},
        ]
    }


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    sent: list[str] = []

    def count(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def members(sessions: Sessions, world: World, key: str, search: str | None = None):
    async with sessions() as session:
        query = await members_query(session, world.group[key], search)
        contacts = await session.scalars(query.order_by(Contact.last_name))
        return [contact.last_name for contact in contacts]


async def test_members_of_every_kind_of_group(sessions: Sessions, world: World):
    assert {key: await members(sessions, world, key) for key in EXPECTED} == EXPECTED


async def test_members_can_be_searched(sessions: Sessions, world: World):
    assert await members(sessions, world, "nested", "D") == ["Dd"]
    assert await members(sessions, world, "nested", "") == ["Aa", "Bb", "Dd"]
    assert await members(sessions, world, "s2", "zwolle") == ["Bb"]


async def test_member_counts_of_many_groups_and_of_missing_ones(
    sessions: Sessions, world: World, engine: AsyncEngine
):
    ids = [world.group[key] for key in EXPECTED]
    async with sessions() as session:
        with statements(engine) as sent:
            counts = await member_counts(session, [*ids, 999_999])
    assert len(sent) == 1, "the maintained counts, one statement for all"
    assert counts == {
        **{world.group[key]: len(names) for key, names in EXPECTED.items()},
        999_999: 0,
    }


async def test_groups_containing_answers_only_for_the_contacts_asked(
    sessions: Sessions, world: World, engine: AsyncEngine
):
    c, g = world.contact, world.group
    asked = [g["s1"], g["zwolle"], g["union"], g["three"], g["only"], g["empty"], 999_999]
    async with sessions() as session:
        found = await groups_containing(session, iter(asked), [c["Aa"], c["Dd"], c["Aa"]])
        assert found == {
            (g["s1"], c["Aa"]),
            (g["zwolle"], c["Aa"]),
            (g["zwolle"], c["Dd"]),
            (g["union"], c["Aa"]),
            (g["only"], c["Dd"]),
        }
        assert await groups_containing(session, [g["s2"]], [c["Bb"]]) == {(g["s2"], c["Bb"])}
        with statements(engine) as sent:
            assert await groups_containing(session, [], [c["Aa"]]) == set()
            assert await groups_containing(session, [g["s1"]], []) == set()
            assert await member_pairs(session, []) == set()
        assert sent == [], "nothing asked: no statement"


async def test_member_pairs_are_the_pairs_that_are_memberships(sessions: Sessions, world: World):
    c, g = world.contact, world.group
    pairs = [
        (g["s1"], c["Aa"]),
        (g["s1"], c["Cc"]),
        (g["both"], c["Bb"]),
        (g["both"], c["Aa"]),
        (g["not_bb"], c["Dd"]),
        (g["not_bb"], c["Bb"]),
    ]
    async with sessions() as session:
        assert await member_pairs(session, pairs) == {
            (g["s1"], c["Aa"]),
            (g["both"], c["Bb"]),
            (g["not_bb"], c["Dd"]),
        }


async def test_candidates_limit_every_set(sessions: Sessions, world: World):
    c, g = world.contact, world.group
    async with sessions() as session:
        graph = await load_graph(session, [g["nested"], g["not_bb"]])
        for candidates, expected in [
            ([c["Dd"]], {"nested": ["Dd"], "not_bb": ["Dd"]}),
            ([c["Bb"], c["Cc"]], {"nested": ["Bb"], "not_bb": []}),
            (None, {"nested": ["Aa", "Bb", "Dd"], "not_bb": ["Aa", "Dd"]}),
        ]:
            sql = SqlText(session.bind.dialect.name)
            sets = member_sets(graph, sql, CORE_RULES.filter_fields, candidates)
            definitions = ",\n".join(f"{name} AS ({body})" for name, body in sets)
            for key in ("nested", "not_bb"):
                rows = await session.execute(
                    sql.statement(f"WITH {definitions} SELECT contact_id FROM g{g[key]}")
                )
                assert sorted(world.name_of(i) for (i,) in rows) == expected[key], key


async def test_a_shared_group_is_one_set_after_the_sets_it_reads(sessions: Sessions, world: World):
    g = world.group
    async with sessions() as session:
        graph = await load_graph(session, [g["nested"], g["both"]])
    names = [name for name, _ in member_sets(graph, SqlText("sqlite"), CORE_RULES.filter_fields)]
    assert len(names) == len(set(names))
    assert names.count(f"g{g['s1']}") == 1
    assert names.index(f"g{g['union']}") < names.index(f"g{g['nested']}")
    assert names.index(f"g{g['s1']}") < names.index(f"g{g['union']}")


async def test_membership_path_explains_why_a_contact_is_in(sessions: Sessions, world: World):
    c, g = world.contact, world.group

    async def path(key: str, name: str) -> list[int] | None:
        async with sessions() as session:
            return await membership_path(session, g[key], c[name])

    assert await path("nested", "Aa") == [g["nested"], g["union"], g["s1"]]
    assert await path("nested", "Dd") == [g["nested"], g["zwolle"]], "the first that holds"
    assert await path("union", "Aa") == [g["union"], g["s1"]]
    assert await path("s3", "Dd") == [g["s3"]]
    assert await path("zwolle", "Bb") == [g["zwolle"]]
    assert await path("three", "Bb") == [g["three"], g["s1"]]
    assert await path("picked", "Aa") == [g["picked"]]
    assert await path("nested", "Cc") is None
    assert await path("union", "Bb") is None, "excluded"
    assert await path("s1", "Ee") is None


async def test_each_contacts_groups_derived_ones_included_by_name(sessions: Sessions, world: World):
    c = world.contact
    async with sessions() as session:
        found = await groups_of_contacts(session, [c["Bb"], c["Ee"], c["Dd"]])
        assert list(found) == [c["Bb"], c["Ee"], c["Dd"]]
        assert [group.name for group in found[c["Bb"]]] == [
            "Both",
            "E1",
            "Nested",
            "S1",
            "S2",
            "Three",
            "Zwolle",
        ]
        assert found[c["Ee"]] == []
        assert [group.name for group in found[c["Dd"]]] == [
            "Nested",
            "Not Bb",
            "Only",
            "S3",
            "Zwolle",
        ]
        ids = await group_ids_of_contact(session, c["Aa"])
        names = {group_id: key for key, group_id in world.group.items()}
        assert [names[i] for i in ids] == ["nested", "not_bb", "picked", "s1", "union", "zwolle"]


async def test_groups_are_in_name_order_whatever_the_case_or_the_ids(
    sessions: Sessions, world: World
):
    c = world.contact
    async with sessions() as session, session.begin():
        second = (await create_group(session, SYSTEM, {"name": "b groep"})).id
        first = (await create_group(session, SYSTEM, {"name": "A groep"})).id
        third = (await create_group(session, SYSTEM, {"name": "C groep"})).id
        for group_id in (third, first, second):
            await add_members(session, SYSTEM, group_id, [c["Ee"]], MembershipSource.API)
    async with sessions() as session:
        found = await groups_of_contacts(session, [c["Ee"]])
    assert [group.id for group in found[c["Ee"]]] == [first, second, third]


async def test_explicit_links_oldest_first_and_only_those_shown_on_the_contact(
    sessions: Sessions, world: World
):
    async with sessions() as session, session.begin():
        contact = Contact(last_name="Ff")
        session.add(contact)
        shown = [
            (
                await create_group(
                    session, SYSTEM, {"name": f"Zichtbaar {i}", "show_on_contact": True}
                )
            ).id
            for i in range(3)
        ]
        hidden = (await create_group(session, SYSTEM, {"name": "Verborgen"})).id
        await session.flush()
        moment = datetime(2024, 3, 1, tzinfo=UTC)
        session.add_all(
            [
                Membership(
                    group_id=shown[2], contact_id=contact.id, member_since=moment, source="API"
                ),
                Membership(
                    group_id=hidden, contact_id=contact.id, member_since=moment, source="API"
                ),
                Membership(
                    group_id=shown[0],
                    contact_id=contact.id,
                    member_since=datetime(2024, 3, 2, tzinfo=UTC),
                    source="API",
                ),
                Membership(
                    group_id=shown[1], contact_id=contact.id, member_since=moment, source="API"
                ),
            ]
        )
    c = world.contact
    async with sessions() as session:
        every = await memberships_of_contacts(session, [contact.id, c["Ee"], c["Bb"]])
        shown_only = await memberships_of_contacts(session, [contact.id], show_on_contact_only=True)
    assert list(every) == [contact.id, c["Ee"], c["Bb"]]
    assert [m.group_id for m in every[contact.id]] == [
        *sorted([hidden, shown[1], shown[2]]),
        shown[0],
    ]
    assert every[c["Ee"]] == []
    assert sorted(m.group_id for m in every[c["Bb"]]) == sorted(
        world.group[key] for key in ("s1", "s2", "e1")
    )
    assert all(m.contact_id == c["Bb"] for m in every[c["Bb"]])
    assert [m.group_id for m in shown_only[contact.id]] == [shown[1], shown[2], shown[0]]


async def test_more_groups_than_one_compound_select_takes(sessions: Sessions, engine: AsyncEngine):
    """SQLite combines at most 500 selects in one statement: 400 groups a statement."""
    async with sessions() as session, session.begin():
        contact = Contact(last_name="Veel")
        session.add(contact)
        groups = [Group(name=f"Groep {i}", name_key=f"groep {i}") for i in range(401)]
        session.add_all(groups)
        await session.flush()
        session.add_all(
            Membership(group_id=g.id, contact_id=contact.id, source="API") for g in groups[::2]
        )
        await session.flush()
        await rebuild(session, cause="written directly", record=False)
    ids = [g.id for g in groups]
    async with sessions() as session:
        graph = await load_graph(session, ids)
        with statements(engine) as sent:
            computed = await compute_pairs(session, graph, ids, [contact.id])
        assert len(sent) == 2, "401 sets: two statements"
        assert computed == {(group_id, contact.id) for group_id in ids[::2]}
        counts = await member_counts(session, ids)
        assert counts == {group_id: 1 - i % 2 for i, group_id in enumerate(ids)}
        found = await groups_containing(session, reversed(ids), [contact.id])
        assert found == computed


async def test_stored_rows_naming_nothing_are_found_and_cleared(sessions: Sessions):
    """The stored rows have no foreign keys (they are written by the hundred thousand):
    a row naming a deleted contact, a static group or no group at all is a difference,
    and the repair removes it."""
    async with sessions() as session, session.begin():
        contact = Contact(last_name="Weg")
        static = Group(name="Vast", name_key="vast")
        session.add_all([contact, static])
        await session.flush()
        stray = [(static.id, contact.id), (static.id + 1000, contact.id), (static.id, 999_999)]
        session.add_all(DerivedMembership(group_id=g, contact_id=c) for g, c in stray)
    async with sessions() as session, session.begin():
        found = await differences(session)
        assert sorted(found) == sorted(
            f"stored row ({g}, {c}) names no derived group or no contact" for g, c in stray
        )
        await rebuild(session, cause="repaired", record=True)
    async with sessions() as session:
        assert await differences(session) == []
