"""``node(id:)`` and ``nodes(ids:)``: every type implementing Node is found, each with the
permission its type needs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from graphql_api.graphql_base.relay import to_global_id
from graphql_api.jobs.models import Job
from graphql_api.testing import (
    GraphQLClient,
    StatementCounter,
    add_members,
    first_user_id,
    make_user,
    new_contact_id,
    new_group_id,
    new_template_id,
)
from graphql_api.web.staff_schema import NODES as NODE_MODELS

NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
NODE = "query($id: ID!) { node(id: $id) { __typename id } }"


def test_every_type_implementing_node_is_found_by_node(app: Any):
    schema = app.state.schema._schema
    implementing = {t.name for t in schema.get_possible_types(schema.get_type("Node"))}
    assert implementing == set(NODE_MODELS)


async def one_of_each(app: Any, client: GraphQLClient) -> dict[str, str]:
    """An object of every type implementing Node, made through the API (a job, which a
    mutation of a kind the test registers would start, straight in the database): ids by
    type."""
    group = await new_group_id(client, name="Buurt")
    await add_members(client, group, [await new_contact_id(client, lastName="Zon")])
    role = await client.data(
        'mutation { createStaffRole(input: {name: "kijker"}) { staffRole { id } } }'
    )
    token = await client.data(
        'mutation { createApiToken(input: {name: "sync"}) { apiToken { id } } }'
    )
    listed = await client.data(
        """query($g: ID!) {
          group(id: $g) { history(first: 1) { nodes { id } } }
          contacts(first: 1) { nodes { id } }
          auditLog(first: 1) { nodes { id } }
          notificationDeliveries(first: 1) { nodes { id } }
        }""",
        {"g": group},
    )
    return {
        "Group": group,
        "Contact": listed["contacts"]["nodes"][0]["id"],
        "User": await first_user_id(client),
        "EmailTemplate": await new_template_id(client),
        "MembershipEvent": listed["group"]["history"]["nodes"][0]["id"],
        "StaffRole": role["createStaffRole"]["staffRole"]["id"],
        "AuditEntry": listed["auditLog"]["nodes"][0]["id"],
        "NotificationDelivery": listed["notificationDeliveries"]["nodes"][0]["id"],
        "ApiToken": token["createApiToken"]["apiToken"]["id"],
        "Job": await a_job(app),
    }


async def a_job(app: Any) -> str:
    async with app.state.sessions() as session, session.begin():
        job = Job(kind="test.nothing", params={}, cause="nothing")
        session.add(job)
        await session.flush()
        return to_global_id("Job", job.id)


async def test_node_and_nodes_find_an_object_of_every_type(app: Any, client: GraphQLClient):
    ids = await one_of_each(app, client)
    assert set(ids) == set(NODE_MODELS)
    expected = [{"__typename": type_name, "id": id} for type_name, id in ids.items()]
    for found in expected:
        assert (await client.data(NODE, {"id": found["id"]}))["node"] == found
    assert (await client.data(NODES, {"ids": list(ids.values())}))["nodes"] == expected


async def test_nodes_answers_each_id_at_its_place(
    app: Any, client: GraphQLClient, http: httpx.AsyncClient
):
    ids = await one_of_each(app, client)
    _, token = await make_user(app, "Anna", "anna@example.coop", role="manager")
    manager = GraphQLClient(http, token)
    asked = [
        ids["Group"],
        to_global_id("Group", 999_999),
        "not an id",
        ids["NotificationDelivery"],
        ids["Group"],
    ]
    body = await manager.execute(NODES, {"ids": asked})
    group = {"__typename": "Group", "id": ids["Group"]}
    assert body["data"]["nodes"] == [group, None, None, None, group]
    malformed, forbidden = sorted(body["errors"], key=lambda e: e["path"])
    assert malformed["path"] == ["nodes", 2]
    assert malformed["extensions"]["code"] == "INVALID_ID"
    assert forbidden["path"] == ["nodes", 3]
    assert forbidden["extensions"]["code"] == "FORBIDDEN"
    assert "deliveries.manage" in forbidden["message"]


@pytest.mark.parametrize(
    "wrong",
    [
        "zzz",
        "",
        to_global_id("Nope", 1),
        to_global_id("Group", 1).rstrip("="),
        to_global_id("PortalAccount", 1),
    ],
)
async def test_node_answers_an_id_this_api_did_not_write_with_invalid_id(
    client: GraphQLClient, wrong: str
):
    """As ``group(id:)`` and every other lookup do; a well-formed id of nothing is null."""
    body = await client.execute(NODE, {"id": wrong})
    assert body["data"] == {"node": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INVALID_ID"
    assert error["path"] == ["node"]
    missing = await client.execute(NODE, {"id": to_global_id("Group", 999_999)})
    assert missing == {"data": {"node": None}}


async def test_an_api_token_is_found_by_its_owner_or_with_users_manage(
    app: Any, client: GraphQLClient, http: httpx.AsyncClient
):
    admins = (await one_of_each(app, client))["ApiToken"]
    _, token = await make_user(app, "Anna", "anna@example.coop", role="manager")
    manager = GraphQLClient(http, token)
    own = await manager.data(
        'mutation { createApiToken(input: {name: "mine"}) { apiToken { id } } }'
    )
    owns = own["createApiToken"]["apiToken"]["id"]
    assert (await manager.data(NODES, {"ids": [owns, admins]}))["nodes"] == [
        {"__typename": "ApiToken", "id": owns},
        None,
    ], "another's token is null to a caller without users.manage, as if it did not exist"
    found = (await client.data(NODES, {"ids": [owns, admins]}))["nodes"]
    assert [n["id"] for n in found] == [owns, admins], "users.manage finds anyone's"


async def test_nodes_takes_at_most_a_page_of_ids(app: Any, client: GraphQLClient):
    limit = app.state.settings.max_page_size
    group = await new_group_id(client, name="Buurt")
    assert len((await client.data(NODES, {"ids": [group] * limit}))["nodes"]) == limit
    body = await client.execute(NODES, {"ids": [group] * (limit + 1)})
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert f"at most {limit} ids" in error["message"]


async def test_nodes_reads_each_type_in_one_statement(
    client: GraphQLClient, statements: StatementCounter
):
    groups = [await new_group_id(client, name=f"Groep {n}") for n in range(5)]
    contacts = [await new_contact_id(client, lastName=f"Zon {n}") for n in range(5)]
    with statements:
        found = await client.data(NODES, {"ids": groups + contacts})
    assert [n["id"] for n in found["nodes"]] == groups + contacts
    assert statements.count == 2, statements.statements
