"""The projectleider role plugin, through the testing kit."""

from graphql_api.testing import GraphQLClient


async def test_project_leaders_are_registered_listed_and_flagged(client: GraphQLClient):
    role = await client.data('{ roles { key label(locale: "en") } }')
    assert {"key": "projectleider", "label": "Is project leader"} in role["roles"]
    group = await client.data(
        'mutation { createGroup(input: {name: "Leiders", neighbourhoodRole: "projectleider"}) { group { id } } }'
    )
    contact = await client.data(
        'mutation { createContact(input: {lastName: "Visser"}) { contact { id } } }'
    )
    group_id = group["createGroup"]["group"]["id"]
    contact_id = contact["createContact"]["contact"]["id"]
    await client.data(
        "mutation($g: ID!, $c: [ID!]!) { addGroupMembers(groupId: $g, contactIds: $c) { changedCount } }",
        {"g": group_id, "c": [contact_id]},
    )
    data = await client.data(
        "query($c: ID!) { projectLeaders { nodes { lastName } } contact(id: $c) { isProjectLeader isCoach } }",
        {"c": contact_id},
    )
    assert data["projectLeaders"]["nodes"] == [{"lastName": "Visser"}]
    assert data["contact"] == {"isProjectLeader": True, "isCoach": False}
