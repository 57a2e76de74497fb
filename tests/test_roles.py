"""The rules of neighbourhood roles (built-in ``core.roles``), with the role plugins installed."""

from __future__ import annotations

from typing import Any

from graphql_api.testing import (
    ADD_MEMBERS,
    CREATE_GROUP,
    UPDATE_GROUP,
    GraphQLClient,
    StatementCounter,
    add_members,
    member_names,
    new_contact_ids,
    new_group_id,
    refused,
)


async def test_a_contact_holds_one_role(app: Any, client: GraphQLClient):
    coaches = await new_group_id(client, name="Coaches", neighbourhoodRole="coach")
    leaders = await new_group_id(client, name="Projectleiders", neighbourhoodRole="projectleider")
    more_coaches = await new_group_id(client, name="Meer coaches", neighbourhoodRole="coach")
    plain = await new_group_id(client, name="Nieuwsbrief")
    anna, bram, cor = await new_contact_ids(client, "Anna", "Bram", "Cor")
    await add_members(client, coaches, [anna, bram])

    errors = await refused(
        app, client, ADD_MEMBERS, {"groupId": leaders, "contactIds": [cor, anna, bram]}
    )
    assert [(e["field"], e["code"]) for e in errors] == [
        (["contactIds", "1"], "ROLE_CONFLICT"),
        (["contactIds", "2"], "ROLE_CONFLICT"),
    ]
    assert errors[0]["message"].startswith("Anna already holds coach through 'Coaches'")
    # Positions are those of the caller's list, existing members and repeats included.
    errors = await refused(
        app, client, ADD_MEMBERS, {"groupId": leaders, "contactIds": [cor, cor, bram]}
    )
    assert [e["field"] for e in errors] == [["contactIds", "2"]]

    for target in (more_coaches, plain):
        data = await client.data(ADD_MEMBERS, {"groupId": target, "contactIds": [anna]})
        assert data["addGroupMembers"]["errors"] == []


async def test_changing_the_role_of_a_group_with_members_is_refused_and_changes_nothing(
    app: Any, client: GraphQLClient
):
    coaches = await new_group_id(client, name="Coaches", neighbourhoodRole="coach")
    [anna] = await new_contact_ids(client, "Anna")
    await add_members(client, coaches, [anna])
    for role in ("projectleider", None):
        variables = {"id": coaches, "input": {"neighbourhoodRole": role}}
        [error] = await refused(app, client, UPDATE_GROUP, variables)
        assert (error["field"], error["code"]) == (["input", "neighbourhoodRole"], "ROLE_IN_USE")
    empty = await new_group_id(client, name="Leeg", neighbourhoodRole="coach")
    data = await client.data(
        UPDATE_GROUP, {"id": empty, "input": {"neighbourhoodRole": "external_party"}}
    )
    assert data["updateGroup"]["group"]["neighbourhoodRole"] == {"key": "external_party"}


async def test_a_role_on_a_derived_group_is_refused_and_changes_nothing(
    app: Any, client: GraphQLClient
):
    base = await new_group_id(client, name="Basis")
    errors = await refused(
        app,
        client,
        CREATE_GROUP,
        {"input": {"name": "Samengesteld", "composedOfIds": [base], "neighbourhoodRole": "coach"}},
    )
    assert errors[0]["code"] == "INVALID"
    assert errors[0]["field"] == ["input", "neighbourhoodRole"]


async def test_filters_and_lists_by_role(app: Any, client: GraphQLClient):
    coaches = await new_group_id(client, name="Coaches", neighbourhoodRole="coach")
    parties = await new_group_id(client, name="Installateurs", neighbourhoodRole="external_party")
    anna, bram, _cor = await new_contact_ids(client, "Anna", "Bram", "Cor")
    await add_members(client, coaches, [anna])
    await add_members(client, parties, [bram])
    dynamic = await new_group_id(
        client,
        name="Geen coach",
        filter={"condition": {"field": "neighbourhoodRole", "op": "NEQ", "value": "coach"}},
    )
    assert await member_names(client, dynamic) == ["Bram", "Cor"]
    errors = await refused(
        app,
        client,
        CREATE_GROUP,
        {
            "input": {
                "name": "Fout",
                "filter": {
                    "condition": {"field": "neighbourhoodRole", "op": "EQ", "value": "astronaut"}
                },
            }
        },
    )
    assert errors[0]["code"] == "INVALID"
    listed = await client.data(
        """{ externalParties { nodes { lastName } } projectLeaders { totalCount }
             groups(filter: {neighbourhoodRole: "coach"}) { edges { node { name } } } }"""
    )
    assert listed["externalParties"]["nodes"] == [{"lastName": "Bram"}]
    assert listed["projectLeaders"]["totalCount"] == 0
    assert listed["groups"]["edges"] == [{"node": {"name": "Coaches"}}]


async def test_role_flags_cost_the_same_statements_however_many_contacts(
    client: GraphQLClient, statements: StatementCounter
):
    """Through the resolvers, the page of contacts, one statement per role flag (three) and
    one for the Hoomdossier accounts: five, for 2 contacts as for 32 (the token check is
    cached). The suite's check mode also answers the query by its plan, in one statement
    (the flags and the account are subqueries of the page's; tests/test_plugin_compiled.py)."""
    resolvers_and_plan = 5 + 1
    coaches = await new_group_id(client, name="Coaches", neighbourhoodRole="coach")
    query = "{ contacts(first: 50) { nodes { isCoach isProjectLeader isExternalParty hoomdossierAccountId } } }"
    ids = await new_contact_ids(client, "A", "B")
    await add_members(client, coaches, ids)
    with statements:
        await client.data(query)
    assert statements.count == resolvers_and_plan, statements.statements
    ids = await new_contact_ids(client, *[f"C{i}" for i in range(30)])
    await add_members(client, coaches, ids)
    with statements:
        data = await client.data(query)
    assert statements.count == resolvers_and_plan, statements.statements
    assert sum(n["isCoach"] for n in data["contacts"]["nodes"]) == 32
