"""The number of SQL statements a request issues does not grow with the size of its answer."""

from __future__ import annotations

from tests.conftest import GraphQLClient, StatementCounter
from tests.test_groups import create_group, create_template
from tests.test_memberships import ADD, create_contacts

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
    users = (await client.data("{ users { id } }"))["users"]
    template = await create_template(client, f"Sjabloon {start}")
    for i in range(start, stop):
        group = await create_group(
            client,
            name=f"Groep {i:03d}",
            responsibleId=users[0]["id"],
            emailOnNewMember=True,
            newMemberEmailTemplateId=template,
            showOnContact=i % 2 == 0,
        )
        await client.data(ADD, {"groupId": group["id"], "contactIds": members[: i % 7 + 1]})


async def test_group_list_statements_do_not_grow(
    client: GraphQLClient, statements: StatementCounter
):
    members = await create_contacts(client, *[f"Lid{i}" for i in range(7)])
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
    members = await create_contacts(client, *[f"Lid{i}" for i in range(7)])
    await add_groups(client, 0, 3, members)
    with statements:
        await client.data(CONTACT_PAGE)
    count_for_7 = statements.count

    more = await create_contacts(client, *[f"Extra{i}" for i in range(30)])
    await add_groups(client, 3, 20, members + more)
    with statements:
        data = await client.data(CONTACT_PAGE)
    assert len(data["contacts"]["nodes"]) == 37
    assert statements.count == count_for_7, statements.statements
