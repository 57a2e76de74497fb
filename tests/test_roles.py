"""The rules of neighbourhood roles (built-in ``core.roles``), with the role plugins installed."""

from __future__ import annotations

from graphql_api.testing import new_contact_ids, new_group_id
from tests.conftest import GraphQLClient

GROUP = """mutation($i: CreateGroupInput!) { createGroup(input: $i) { group { id } errors { code field message } } }"""
UPDATE = """mutation($id: ID!, $i: UpdateGroupInput!) { updateGroup(id: $id, input: $i) { group { neighbourhoodRole { key } } errors { code field message } } }"""
ADD = """mutation($g: ID!, $c: [ID!]!) { addGroupMembers(groupId: $g, contactIds: $c) {
  changedCount errors { field code message } } }"""


async def members(client: GraphQLClient, group_id: str) -> list[str]:
    data = await client.data(
        "query($id: ID!) { group(id: $id) { members { nodes { lastName } } } }", {"id": group_id}
    )
    return [n["lastName"] for n in data["group"]["members"]["nodes"]]


async def test_a_contact_holds_one_role(client: GraphQLClient):
    coaches = await new_group_id(client, name="Coaches", neighbourhoodRole="coach")
    leaders = await new_group_id(client, name="Projectleiders", neighbourhoodRole="projectleider")
    more_coaches = await new_group_id(client, name="Meer coaches", neighbourhoodRole="coach")
    plain = await new_group_id(client, name="Nieuwsbrief")
    anna, bram, cor = await new_contact_ids(client, "Anna", "Bram", "Cor")
    await client.data(ADD, {"g": coaches, "c": [anna, bram]})

    data = await client.data(ADD, {"g": leaders, "c": [cor, anna, bram]})
    errors = data["addGroupMembers"]["errors"]
    assert [(e["field"], e["code"]) for e in errors] == [
        (["contactIds", "1"], "ROLE_CONFLICT"),
        (["contactIds", "2"], "ROLE_CONFLICT"),
    ]
    assert errors[0]["message"].startswith("Anna already holds coach through 'Coaches'")
    # Positions are those of the caller's list, existing members and repeats included.
    data = await client.data(ADD, {"g": leaders, "c": [cor, cor, bram]})
    assert [e["field"] for e in data["addGroupMembers"]["errors"]] == [["contactIds", "2"]]
    assert await members(client, leaders) == [], "the whole call is refused"

    for target in (more_coaches, plain):
        data = await client.data(ADD, {"g": target, "c": [anna]})
        assert data["addGroupMembers"]["errors"] == []


async def test_a_role_cannot_change_while_the_group_has_members(client: GraphQLClient):
    coaches = await new_group_id(client, name="Coaches", neighbourhoodRole="coach")
    [anna] = await new_contact_ids(client, "Anna")
    await client.data(ADD, {"g": coaches, "c": [anna]})
    for role in ("projectleider", None):
        data = await client.data(UPDATE, {"id": coaches, "i": {"neighbourhoodRole": role}})
        assert data["updateGroup"]["errors"][0]["code"] == "ROLE_IN_USE"
        assert data["updateGroup"]["errors"][0]["field"] == ["input", "neighbourhoodRole"]
    empty = await new_group_id(client, name="Leeg", neighbourhoodRole="coach")
    data = await client.data(UPDATE, {"id": empty, "i": {"neighbourhoodRole": "external_party"}})
    assert data["updateGroup"]["group"]["neighbourhoodRole"] == {"key": "external_party"}


async def test_only_static_groups_give_a_role(client: GraphQLClient):
    base = await new_group_id(client, name="Basis")
    data = await client.data(
        GROUP,
        {"i": {"name": "Samengesteld", "composedOfIds": [base], "neighbourhoodRole": "coach"}},
    )
    assert data["createGroup"]["errors"][0]["code"] == "INVALID"
    assert data["createGroup"]["errors"][0]["field"] == ["input", "neighbourhoodRole"]


async def test_filters_and_lists_by_role(client: GraphQLClient):
    coaches = await new_group_id(client, name="Coaches", neighbourhoodRole="coach")
    parties = await new_group_id(client, name="Installateurs", neighbourhoodRole="external_party")
    anna, bram, _cor = await new_contact_ids(client, "Anna", "Bram", "Cor")
    await client.data(ADD, {"g": coaches, "c": [anna]})
    await client.data(ADD, {"g": parties, "c": [bram]})
    dynamic = await new_group_id(
        client,
        name="Geen coach",
        filter={"condition": {"field": "neighbourhoodRole", "op": "NEQ", "value": "coach"}},
    )
    assert await members(client, dynamic) == ["Bram", "Cor"]
    data = await client.data(
        GROUP,
        {
            "i": {
                "name": "Fout",
                "filter": {
                    "condition": {"field": "neighbourhoodRole", "op": "EQ", "value": "astronaut"}
                },
            }
        },
    )
    assert data["createGroup"]["errors"][0]["code"] == "INVALID"
    listed = await client.data(
        """{ externalParties { nodes { lastName } } projectLeaders { totalCount }
             groups(filter: {neighbourhoodRole: "coach"}) { edges { node { name } } } }"""
    )
    assert listed["externalParties"]["nodes"] == [{"lastName": "Bram"}]
    assert listed["projectLeaders"]["totalCount"] == 0
    assert listed["groups"]["edges"] == [{"node": {"name": "Coaches"}}]


async def test_role_flags_cost_one_statement_for_many_contacts(client: GraphQLClient, statements):
    coaches = await new_group_id(client, name="Coaches", neighbourhoodRole="coach")
    query = "{ contacts(first: 50) { nodes { isCoach isProjectLeader isExternalParty hoomdossierAccountId } } }"
    ids = await new_contact_ids(client, "A", "B")
    await client.data(ADD, {"g": coaches, "c": ids})
    with statements:
        await client.data(query)
    few = statements.count
    ids = await new_contact_ids(client, *[f"C{i}" for i in range(30)])
    await client.data(ADD, {"g": coaches, "c": ids})
    with statements:
        data = await client.data(query)
    assert statements.count == few
    assert sum(n["isCoach"] for n in data["contacts"]["nodes"]) == 32
