"""The external_party role plugin, through the testing kit."""

from graphql_api.testing import GraphQLClient, check_role_plugin


async def test_external_parties_are_registered_listed_and_flagged(client: GraphQLClient):
    await check_role_plugin(
        client, "external_party", "Is external party", "externalParties", "isExternalParty"
    )
