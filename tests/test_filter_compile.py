"""Filters compiled to SQL (graphql_api.groups.filters.compile_filter), run on the test
database through ``filter_contacts``: which contacts each operator of each field type
matches, empty values, the day boundaries of dates, memberOf other groups, and a plugin's
own field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from graphql_api.contacts.models import Contact, ContactKind
from graphql_api.groups.filters import (
    CONTACT_FIELDS,
    FieldType,
    FilterField,
    FilterOp,
    compile_filter,
)
from graphql_api.groups.lifecycle import create_group
from graphql_api.groups.membership_reads import filter_contacts, members_query
from graphql_api.groups.membership_writes import add_members
from graphql_api.groups.models import MembershipSource
from graphql_api.groups.rules import Rules
from graphql_api.kernel.access import SYSTEM
from graphql_api.kernel.db import create_engine, create_sessionmaker
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError
from graphql_api.kernel.sql import SqlText
from graphql_api.testing import empty_tables

Sessions = async_sessionmaker[AsyncSession]
CALLS: list[tuple[FilterOp, list[str]]] = []


def compile_domain(op: FilterOp, values: list[str], sql: SqlText) -> str:
    """A plugin's field, as in docs/plugins.md: the domain of the e-mail address."""
    CALLS.append((op, list(values)))
    email = "lower(coalesce(contacts.email, ''))"
    if op is FilterOp.IS_EMPTY:
        return f"{email} NOT LIKE {sql.bind('%@%' + values[0])}"
    matches = " OR ".join(f"{email} LIKE {sql.bind('%@' + v.lower())}" for v in values)
    return f"NOT ({matches})" if op is FilterOp.NEQ else f"({matches})"


FIELDS = {
    **CONTACT_FIELDS,
    "emailDomain": FilterField("emailDomain", FieldType.TEXT, compile=compile_domain),
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CONTACTS: list[dict[str, Any]] = [
    {
        "first_name": "Anna",
        "last_name": "Zonneveld",
        "city": "Zwolle",
        "postal_code": "8011 AB",
        "email": "anna@zon.nl",
        "created_at": at("2024-03-10T23:59:59.999999"),
    },
    {
        "first_name": "Bram",
        "last_name": "Molenaar",
        "city": "ZWOLLE",
        "postal_code": "8021 CD",
        "created_at": at("2024-03-11T00:00:00"),
    },
    {
        "first_name": "Cor",
        "last_name": "de Wind",
        "city": "Deventer",
        "postal_code": "7411 EF",
        "email": "cor@wind.nl",
        "created_at": at("2024-03-11T23:59:59"),
    },
    {
        "first_name": "Ölaf",
        "last_name": "Åberg_100%",
        "city": "",
        "email": "",
        "created_at": at("2024-03-12T00:00:00"),
    },
    {
        "kind": ContactKind.ORGANISATION,
        "organisation_name": "Zon BV",
        "email": "info@ZON.nl",
        "created_at": at("2024-03-09T12:00:00"),
    },
]
ANNA, BRAM, COR, OLAF, ZON = (
    "Anna Zonneveld",
    "Bram Molenaar",
    "Cor de Wind",
    "Ölaf Åberg_100%",
    "Zon BV",
)
EVERYONE = [ANNA, BRAM, COR, OLAF, ZON]


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    """Sessions with the core's filter fields and a plugin's ``emailDomain``; the five
    contacts above, created at known moments."""
    engine = create_engine(database_url)
    made = create_sessionmaker(engine, info={"rules": Rules(filter_fields=FIELDS)})
    async with made() as session, session.begin():
        session.add_all(Contact(**values) for values in CONTACTS)
    yield made
    await empty_tables(engine)
    await engine.dispose()


async def matching(sessions: Sessions, tree: dict[str, Any]) -> list[str]:
    async with sessions() as session:
        query = await filter_contacts(session, select(Contact).order_by(Contact.id), tree)
        return [c.display_name for c in await session.scalars(query)]


def cond(field: str, op: str, value: str | None = None, values: list[str] | None = None):
    condition: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        condition["value"] = value
    if values is not None:
        condition["values"] = values
    return {"condition": condition}


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (cond("city", "EQ", "zwolle"), [ANNA, BRAM]),
        (cond("city", "NEQ", "ZWOLLE"), [COR, OLAF, ZON]),
        (cond("lastName", "CONTAINS", "OLEN"), [BRAM]),
        (cond("lastName", "NOT_CONTAINS", "o"), [COR, OLAF, ZON]),
        (cond("lastName", "CONTAINS", "g_1"), [OLAF]),
        (cond("lastName", "CONTAINS", "0%"), [OLAF]),
        (cond("lastName", "CONTAINS", "%"), [OLAF]),
        (cond("lastName", "CONTAINS", "_"), [OLAF]),
        (cond("lastName", "NOT_CONTAINS", "%"), [ANNA, BRAM, COR, ZON]),
        (cond("postalCode", "STARTS_WITH", "80"), [ANNA, BRAM]),
        (cond("postalCode", "STARTS_WITH", "1"), []),
        (cond("email", "ENDS_WITH", "ZON.NL"), [ANNA, ZON]),
        (cond("email", "ENDS_WITH", "anna"), []),
        (cond("postalCode", "LT", "8011 AB"), [COR]),
        (cond("postalCode", "LTE", "8011 ab"), [ANNA, COR]),
        (cond("postalCode", "GT", "8011 AB"), [BRAM]),
        (cond("postalCode", "GTE", "8011 AB"), [ANNA, BRAM]),
        (cond("lastName", "GT", "z"), [ANNA, OLAF]),
        (cond("city", "IN", values=["deventer", "ZWOLLE"]), [ANNA, BRAM, COR]),
        (cond("city", "IS_EMPTY"), [OLAF, ZON]),
        (cond("email", "IS_EMPTY"), [BRAM, OLAF]),
        (cond("email", "IS_NOT_EMPTY"), [ANNA, COR, ZON]),
        (cond("firstName", "EQ", "ÖLAF"), [OLAF]),
        (cond("kind", "EQ", "ORGANISATION"), [ZON]),
        (cond("kind", "NEQ", "ORGANISATION"), [ANNA, BRAM, COR, OLAF]),
        (cond("kind", "IN", values=["ORGANISATION", "PERSON"]), EVERYONE),
        (cond("kind", "IN", values=["ORGANISATION"]), [ZON]),
    ],
)
async def test_text_and_choice_operators(sessions: Sessions, tree: dict, expected: list[str]):
    assert await matching(sessions, tree) == expected


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("EQ", [BRAM, COR]),
        ("NEQ", [ANNA, OLAF, ZON]),
        ("LT", [ANNA, ZON]),
        ("LTE", [ANNA, BRAM, COR, ZON]),
        ("GT", [OLAF]),
        ("GTE", [BRAM, COR, OLAF]),
    ],
)
async def test_a_date_is_the_whole_utc_day(sessions: Sessions, op: str, expected: list[str]):
    assert await matching(sessions, cond("createdAt", op, "2024-03-11")) == expected


async def test_all_any_and_not_combine(sessions: Sessions):
    zwolle = cond("city", "EQ", "Zwolle")
    organisation = cond("kind", "EQ", "ORGANISATION")
    assert await matching(sessions, {"all": [zwolle, cond("firstName", "EQ", "bram")]}) == [BRAM]
    assert await matching(sessions, {"any": [zwolle, organisation]}) == [ANNA, BRAM, ZON]
    assert await matching(sessions, {"not": {"any": [zwolle, organisation]}}) == [COR, OLAF]
    assert await matching(sessions, {"all": [{"not": zwolle}, {"not": organisation}]}) == [
        COR,
        OLAF,
    ]
    assert await matching(sessions, {"any": [{"all": [zwolle]}, {"not": {"not": organisation}}]})


async def test_member_of_other_groups(sessions: Sessions):
    async with sessions() as session, session.begin():
        ids = {c.display_name: c.id for c in await session.scalars(select(Contact))}
        first = (await create_group(session, SYSTEM, {"name": "Eerste"})).id
        second = (await create_group(session, SYSTEM, {"name": "Tweede"})).id
        await add_members(session, SYSTEM, first, [ids[ANNA], ids[COR]], MembershipSource.API)
        await add_members(session, SYSTEM, second, [ids[COR], ids[ZON]], MembershipSource.API)
        zwolle = cond("city", "EQ", "zwolle")
        dynamic = (await create_group(session, SYSTEM, {"name": "Zwolle", "filter": zwolle})).id
    assert await matching(sessions, cond("memberOf", "EQ", str(first))) == [ANNA, COR]
    assert await matching(sessions, cond("memberOf", "NEQ", str(first))) == [BRAM, OLAF, ZON]
    assert await matching(sessions, cond("memberOf", "IN", values=[str(first), str(second)])) == [
        ANNA,
        COR,
        ZON,
    ]
    assert await matching(sessions, cond("memberOf", "EQ", str(dynamic))) == [ANNA, BRAM]
    assert await matching(
        sessions,
        {"all": [cond("memberOf", "NEQ", str(dynamic)), cond("memberOf", "EQ", str(second))]},
    ) == [COR, ZON]


async def test_member_of_a_group_that_does_not_exist_is_refused(sessions: Sessions):
    with pytest.raises(UserInputError) as refused:
        await matching(sessions, cond("memberOf", "IN", values=["999999"]))
    assert refused.value.problems == (
        Problem(("filter",), ErrorCode.NOT_FOUND, "memberOf names a group that does not exist."),
    )


async def test_a_plugin_field_compiles_its_own_condition(sessions: Sessions):
    CALLS.clear()
    assert await matching(sessions, cond("emailDomain", "EQ", "Zon.NL")) == [ANNA, ZON]
    assert await matching(sessions, cond("emailDomain", "NEQ", "zon.nl")) == [BRAM, COR, OLAF]
    in_ = cond("emailDomain", "IN", values=["wind.nl", "zon.nl"])
    assert await matching(sessions, in_) == [ANNA, COR, ZON]
    assert await matching(sessions, cond("emailDomain", "IS_EMPTY")) == [BRAM, OLAF]
    nested = {"any": [{"not": cond("emailDomain", "EQ", "zon.nl")}, cond("city", "EQ", "zwolle")]}
    assert await matching(sessions, nested) == [ANNA, BRAM, COR, OLAF]
    assert CALLS == [
        (FilterOp.EQ, ["Zon.NL"]),
        (FilterOp.NEQ, ["zon.nl"]),
        (FilterOp.IN, ["wind.nl", "zon.nl"]),
        (FilterOp.IS_EMPTY, [""]),
        (FilterOp.EQ, ["zon.nl"]),
    ], "the values for IN, else the one value; none is an empty text"


async def test_a_dynamic_group_on_a_plugin_field(sessions: Sessions):
    async with sessions() as session, session.begin():
        values = {"name": "Zon", "filter": cond("emailDomain", "IN", values=["zon.nl"])}
        group = await create_group(session, SYSTEM, values)
    async with sessions() as session:
        query = await members_query(session, group.id)
        names = [c.display_name for c in await session.scalars(query.order_by(Contact.id))]
    assert names == [ANNA, ZON]


def test_a_condition_compiles_to_bound_sql():
    sql = SqlText("sqlite")

    def members_of(group_id: int) -> str:
        return f"SELECT contact_id FROM g{group_id}"

    tree = {
        "all": [
            cond("city", "EQ", "Zwolle"),
            {"not": cond("memberOf", "IN", values=["3", "4"])},
            {"any": [cond("kind", "NEQ", "PERSON"), cond("email", "IS_EMPTY")]},
        ]
    }
    assert compile_filter(tree, sql, members_of) == (
        "(lower(coalesce(contacts.city, '')) = lower(:p0)"
        " AND NOT (contacts.id IN (SELECT contact_id FROM g3)"
        " OR contacts.id IN (SELECT contact_id FROM g4))"
        " AND (contacts.kind <> :p1 OR coalesce(contacts.email, '') = ''))"
    )
    statement = sql.statement(compile_filter(tree, SqlText("sqlite"), members_of))
    assert [b.value for b in statement._bindparams.values()] == ["Zwolle", "PERSON"]
