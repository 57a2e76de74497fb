"""The projectleider role plugin, through the testing kit."""

from graphql_api.testing import GraphQLClient, check_role_plugin


async def test_project_leaders_are_registered_listed_and_flagged(client: GraphQLClient):
    await check_role_plugin(
        client, "projectleider", "Is project leader", "projectLeaders", "isProjectLeader"
    )
