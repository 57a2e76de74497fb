"""The number of SQL statements a request issues does not grow with the size of its answer.

These count the resolvers' statements (compiled reads off); test_compiled_reads counts the
plans'."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api.testing import (
    GraphQLClient,
    StatementCounter,
    add_members,
    first_user_id,
    new_contact_ids,
    new_group_id,
    new_template_id,
)


@pytest.fixture
async def app(app_factory: Any) -> Any:
    return app_factory(compiled_reads="off")


GROUPS_PAGE = """{
  groups(first: 50) {
    totalCount
    edges { node { name responsible { name } createdBy { name } memberCount
                   newMemberEmailTemplate { name } } }
  }
}"""
CONTACT_PAGE = """{
  contacts(first: 50) {
    nodes { displayName groups { name } memberships { group { name } addedBy { name } }
            visibleGroups { static { group { name } } } }
  }
}"""


async def add_groups(client: GraphQLClient, start: int, stop: int, members: list[str]) -> None:
    responsible = await first_user_id(client)
    template = await new_template_id(client, name=f"Sjabloon {start}")
    for i in range(start, stop):
        group = await new_group_id(
            client,
            name=f"Groep {i:03d}",
            responsibleId=responsible,
            emailOnNewMember=True,
            newMemberEmailTemplateId=template,
            showOnContact=i % 2 == 0,
        )
        await add_members(client, group, members[: i % 7 + 1])


async def test_group_list_statements_do_not_grow(
    client: GraphQLClient, statements: StatementCounter
):
    members = await new_contact_ids(client, *[f"Lid{i}" for i in range(7)])
    await add_groups(client, 0, 5, members)
    with statements:
        small = await client.data(GROUPS_PAGE)
    count_for_5 = statements.count
    assert len(small["groups"]["edges"]) == 5

    await add_groups(client, 5, 50, members)
    with statements:
        large = await client.data(GROUPS_PAGE)
    assert len(large["groups"]["edges"]) == 50
    assert statements.count == count_for_5, statements.statements
    # auth, page, totalCount, users, group graph, member counts, templates
    assert count_for_5 <= 7


async def test_contact_list_statements_do_not_grow(
    client: GraphQLClient, statements: StatementCounter
):
    members = await new_contact_ids(client, *[f"Lid{i}" for i in range(7)])
    await add_groups(client, 0, 3, members)
    with statements:
        await client.data(CONTACT_PAGE)
    count_for_7 = statements.count

    more = await new_contact_ids(client, *[f"Extra{i}" for i in range(30)])
    await add_groups(client, 3, 20, members + more)
    with statements:
        data = await client.data(CONTACT_PAGE)
    assert len(data["contacts"]["nodes"]) == 37
    assert statements.count == count_for_7, statements.statements


COMPOSITE_PAGE = """query($id: ID!) { group(id: $id) {
  memberCount members(first: 100) { totalCount nodes { displayName } } } }"""
CONTACT_GROUPS = """query($id: ID!) { contact(id: $id) {
  groups { name } visibleGroups { derived { name } static { group { name } } } } }"""
COMPOSED_PAGE = """{ groups(first: 50) { edges { node { name memberCount composedOf { name }
  excludedGroups { name } usedBy { name } } } } }"""


async def build_composites(
    client: GraphQLClient, contacts: list[str], count: int, start: int = 0
) -> str:
    """``count`` static groups, a composite over them and a dynamic group; returns the top id."""
    statics = []
    for i in range(start, start + count):
        group = await new_group_id(client, name=f"Statisch {i:03d}")
        await add_members(client, group, contacts[i % 3 :: 2])
        statics.append(group)
    union = await new_group_id(
        client, name=f"Samen {start}", composedOfIds=statics, showOnContact=True
    )
    both = await new_group_id(
        client,
        name=f"Beide {start}",
        composedOfIds=statics[:2],
        compositionMode="ALL",
        excludedGroupIds=statics[2:3],
    )
    await new_group_id(
        client,
        name=f"Dynamisch {start}",
        showOnContact=True,
        filter={
            "any": [
                {"condition": {"field": "memberOf", "op": "EQ", "value": union}},
                {"condition": {"field": "lastName", "op": "STARTS_WITH", "value": "Lid1"}},
            ]
        },
    )
    return await new_group_id(client, name=f"Top {start}", composedOfIds=[union, both])


async def test_derived_membership_statements_do_not_grow(
    client: GraphQLClient, statements: StatementCounter
):
    contacts = await new_contact_ids(client, *[f"Lid{i}" for i in range(12)])
    top = await build_composites(client, contacts, 3)
    counts = {}
    for label, query, variables in (
        ("members", COMPOSITE_PAGE, {"id": top}),
        ("contact", CONTACT_GROUPS, {"id": contacts[0]}),
        ("groups", COMPOSED_PAGE, {}),
    ):
        with statements:
            await client.data(query, variables)
        counts[label] = statements.count

    contacts += await new_contact_ids(client, *[f"Extra{i}" for i in range(60)])
    top = await build_composites(client, contacts, 12, start=100)
    for label, query, variables in (
        ("members", COMPOSITE_PAGE, {"id": top}),
        ("contact", CONTACT_GROUPS, {"id": contacts[0]}),
        ("groups", COMPOSED_PAGE, {}),
    ):
        with statements:
            data = await client.data(query, variables)
        assert statements.count == counts[label], (label, statements.statements)
    assert len(data["groups"]["edges"]) > 20
