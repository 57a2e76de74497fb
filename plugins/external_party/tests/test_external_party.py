"""The external_party role plugin, through the testing kit."""

from graphql_api.testing import GraphQLClient


async def test_external_parties_are_registered_listed_and_flagged(client: GraphQLClient):
    role = await client.data("{ roles { key label } }")
    assert {"key": "external_party", "label": "Is externe partij"} in role["roles"]
    group = await client.data(
        'mutation { createGroup(input: {name: "Installateurs", neighbourhoodRole: "external_party"}) { group { id } } }'
    )
    contact = await client.data(
        'mutation { createContact(input: {kind: ORGANISATION, organisationName: "Warmte BV"}) { contact { id } } }'
    )
    group_id = group["createGroup"]["group"]["id"]
    contact_id = contact["createContact"]["contact"]["id"]
    await client.data(
        "mutation($g: ID!, $c: [ID!]!) { addGroupMembers(groupId: $g, contactIds: $c) { changedCount } }",
        {"g": group_id, "c": [contact_id]},
    )
    data = await client.data(
        "query($c: ID!) { externalParties { totalCount nodes { displayName } } contact(id: $c) { isExternalParty } }",
        {"c": contact_id},
    )
    assert data["externalParties"] == {"totalCount": 1, "nodes": [{"displayName": "Warmte BV"}]}
    assert data["contact"]["isExternalParty"] is True
