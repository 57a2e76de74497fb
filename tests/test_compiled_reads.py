"""Compiled reads (``graphql_api.graphql_base.compiled``): a query that ran cleanly once is answered
from then on by one statement per level, with the answer the resolvers would give.

The whole suite runs with ``GRAPHQL_API_COMPILED_READS=check``, where every clean query is
answered both ways and the two must agree. These tests use ``on``, as a deployment does:
what is planned, what the plans cost in statements, and that every request a plan cannot
answer exactly (bad variables, a missing permission, a cost over the limit) still gets
the resolvers' answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from graphql_api.graphql_base.relay import to_global_id
from graphql_api.kernel.db import create_engine
from graphql_api.testing import (
    GraphQLClient,
    StatementCounter,
    add_members,
    first_user_id,
    new_contact_ids,
    new_group_id,
)

GROUPS = "{ groups(first: 50) { edges { node { id name responsible { name } } } } }"
MEMBERS = """query Members($id: ID!, $first: Int, $after: String) {
  group(id: $id) {
    name kind
    members(first: $first, after: $after) {
      totalCount
      edges { cursor node { id firstName lastName email city createdAt } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}"""
CONTACT = """query Contact($id: ID!) {
  contact(id: $id) {
    ...Names
    memberships {
      memberSince source group { id name __typename memberCount } addedBy { name }
      contact { displayName }
    }
  }
}
fragment Names on Contact { firstName lastName }"""


@pytest.fixture
async def app(app_factory: Any) -> Any:
    """The application as deployed: compiled reads on (the kit's ``http``, ``client`` and
    ``statements`` use it)."""
    return app_factory(compiled_reads="on")


@asynccontextmanager
async def over_asgi(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def groups_with_members(
    client: GraphQLClient, count: int, members: list[str], prefix: str = "Groep"
) -> str:
    """``count`` new groups with up to three of ``members`` each; the last one's id."""
    responsible = await first_user_id(client)
    group = ""
    for i in range(count):
        group = await new_group_id(client, name=f"{prefix} {i:02d}", responsibleId=responsible)
        if members:
            await add_members(client, group, members[: i % 3 + 1])
    return group


def planned(app: Any, query: str, operation: str | None = None) -> bool:
    return app.state.compiled_reads.plan_for(query, operation) is not None


async def test_a_query_is_planned_once_it_ran_cleanly_and_answers_alike(
    app: Any, client: GraphQLClient, statements: StatementCounter
):
    await groups_with_members(client, 3, await new_contact_ids(client, "A", "B", "C"))
    assert not planned(app, GROUPS)
    with statements:
        first = await client.data(GROUPS)
    by_resolvers = statements.count
    assert "description" in statements.statements[0]
    assert planned(app, GROUPS)
    with statements:
        second = await client.data(GROUPS)
    assert second == first
    assert by_resolvers == 2  # the groups, then their users
    # The plan reads the users with their groups, by an outer join, and selects only the
    # columns asked for, where the resolvers load whole rows.
    assert statements.count == 1, statements.statements
    assert "JOIN users" in statements.statements[0]
    assert "description" not in statements.statements[0]


async def test_planned_statements_do_not_grow_with_the_answer(
    app: Any, client: GraphQLClient, statements: StatementCounter
):
    contacts = await new_contact_ids(client, *[f"Lid{i}" for i in range(6)])
    group = await groups_with_members(client, 2, contacts)
    query = """query($id: ID!) { group(id: $id) { members { nodes { memberships {
      group { name responsible { name } } } } } } groups { nodes { createdBy { name } } } }"""
    await client.data(query, {"id": group})
    with statements:
        small = await client.data(query, {"id": group})
    count_small = statements.count
    await add_members(client, group, contacts)
    await groups_with_members(client, 8, contacts, prefix="Meer")
    with statements:
        large = await client.data(query, {"id": group})
    assert len(large["group"]["members"]["nodes"]) > len(small["group"]["members"]["nodes"])
    # the group, its page, their memberships, those groups with their responsible users
    # (joined), the groups with their creators (joined)
    assert statements.count == count_small == 5, statements.statements


async def test_pages_cursors_and_counts_answer_as_the_resolvers_do(
    app: Any, client: GraphQLClient, app_factory: Any
):
    contacts = await new_contact_ids(client, *[f"Lid{i}" for i in range(7)])
    group = await groups_with_members(client, 1, [])
    await add_members(client, group, contacts)
    await client.data(MEMBERS, {"id": group, "first": 3})
    assert planned(app, MEMBERS)
    pages, after = [], None
    while True:
        page = await client.data(MEMBERS, {"id": group, "first": 3, "after": after})
        pages.append(page)
        members = page["group"]["members"]
        if not members["pageInfo"]["hasNextPage"]:
            break
        after = members["pageInfo"]["endCursor"]
    names = [e["node"]["lastName"] for p in pages for e in p["group"]["members"]["edges"]]
    assert names == [f"Lid{i}" for i in range(7)]
    assert {p["group"]["members"]["totalCount"] for p in pages} == {7}
    # The same requests through the resolvers alone give the same pages.
    resolving = app_factory(compiled_reads="off")
    async with over_asgi(resolving) as http:
        alone = GraphQLClient(http, client.token)
        after = None
        for page in pages:
            assert await alone.data(MEMBERS, {"id": group, "first": 3, "after": after}) == page
            after = page["group"]["members"]["pageInfo"]["endCursor"]


async def test_a_planned_read_sees_what_was_committed_before_it(app: Any, client: GraphQLClient):
    contacts = await new_contact_ids(client, "Jansen")
    group = await groups_with_members(client, 1, contacts)
    asked = {"id": contacts[0]}
    await client.data(CONTACT, asked)
    before = await client.data(CONTACT, asked)
    assert [m["group"]["name"] for m in before["contact"]["memberships"]] == ["Groep 00"]
    renamed = await client.data(
        'mutation($id: ID!) { updateGroup(id: $id, input: {name: "Hernoemd"}) '
        "{ errors { code } } }",
        {"id": group},
    )
    assert renamed["updateGroup"]["errors"] == []
    after = await client.data(CONTACT, asked)
    assert [m["group"]["name"] for m in after["contact"]["memberships"]] == ["Hernoemd"]


PLANNED = {
    "aliases and __typename": "{ __typename all: groups { nodes { key: id n: name } } }",
    "fragments": "query { contacts(first: 2) { nodes { ...C } } } fragment C on Contact { id }",
    "inline fragments": "{ groups { edges { node { ... on Group { name } } } } }",
    "history": '{ group(id: "R3JvdXA6MQ==") { history { nodes { action actor { name } } } } }',
    "values made of columns": "{ contacts { nodes { displayName } } groups { nodes { memberCount } } }",
}
LEFT_TO_RESOLVERS = {
    "a directive": "{ groups { nodes { name @include(if: true) } } }",
    "introspection": "{ __schema { queryType { name } } }",
    "an interface": '{ node(id: "R3JvdXA6MQ==") { id } }',
    "a field without a compiled form": "{ groups { nodes { composedOf { name } } } }",
    "a page under a list": "{ groups { nodes { members { nodes { id } } } } }",
    "a mutation": 'mutation { createContact(input: {lastName: "X"}) { errors { code } } }',
}


@pytest.mark.parametrize("query", PLANNED.values(), ids=PLANNED.keys())
async def test_plain_documents_are_planned(app: Any, client: GraphQLClient, query: str):
    await client.data(query)
    assert planned(app, query)


@pytest.mark.parametrize("query", LEFT_TO_RESOLVERS.values(), ids=LEFT_TO_RESOLVERS.keys())
async def test_other_documents_are_left_to_the_resolvers(
    app: Any, client: GraphQLClient, query: str
):
    await client.data(query)
    assert app.state.compiled_reads.known(query, None)
    assert not planned(app, query)


FALLBACKS = {
    "an id of another type": {"id": to_global_id("Contact", 1)},
    "a malformed id": {"id": "nonsense"},
    "a page too large": {"first": 1000},
    "a negative page": {"first": -1},
    "a cursor not ours": {"after": "bm90IGEgY3Vyc29y"},
    "text that cannot be stored": {"after": "a\u0000b"},
    "a variable of the wrong type": {"first": "ten"},
}


@pytest.mark.parametrize("variables", FALLBACKS.values(), ids=FALLBACKS.keys())
async def test_requests_a_plan_cannot_answer_get_the_resolvers_answer(
    app: Any, client: GraphQLClient, app_factory: Any, variables: dict[str, Any]
):
    group = await groups_with_members(client, 1, await new_contact_ids(client, "A"))
    await client.data(MEMBERS, {"id": group})
    assert planned(app, MEMBERS)
    asked = {"id": group, **variables}
    answer = await client.execute(MEMBERS, asked)
    assert answer["errors"], answer
    resolving = app_factory(compiled_reads="off")
    async with over_asgi(resolving) as http:
        assert await GraphQLClient(http, client.token).execute(MEMBERS, asked) == answer


async def test_a_plan_answers_only_callers_holding_its_permissions(
    app: Any, client: GraphQLClient, http: httpx.AsyncClient
):
    contacts = await new_contact_ids(client, "Jansen")
    query = "query($id: ID!) { contact(id: $id) { lastName email } }"
    await client.data(query, {"id": contacts[0]})
    assert planned(app, query)
    narrowed = await client.data(
        'mutation { createApiToken(input: {name: "sync", permissions: ["groups.view"]}) '
        "{ secret } }"
    )
    caller = GraphQLClient(http, narrowed["createApiToken"]["secret"])
    answer = await caller.execute(query, {"id": contacts[0]})
    assert answer["data"] == {"contact": None}
    assert {e["extensions"]["code"] for e in answer["errors"]} == {"FORBIDDEN"}


async def test_a_cost_over_the_limit_is_refused_for_a_planned_query_too(
    app_factory: Any, app: Any, client: GraphQLClient
):
    query = "query($first: Int) { groups(first: $first) { nodes { responsible { name } } } }"
    limited = app_factory(compiled_reads="on", max_query_cost=20)
    async with over_asgi(limited) as http:
        caller = GraphQLClient(http, client.token)
        await caller.data(query, {"first": 5})
        assert limited.state.compiled_reads.plan_for(query, None) is not None
        answer = await caller.execute(query, {"first": 50})
    assert answer["errors"][0]["extensions"]["code"] == "LIMIT_EXCEEDED"


@pytest.mark.parametrize("accept", [None, "application/graphql-response+json"])
async def test_a_planned_answer_is_the_same_http_response(
    app_factory: Any,
    client: GraphQLClient,
    accept: str | None,
    caplog: pytest.LogCaptureFixture,
):
    contacts = await new_contact_ids(client, "Jansen")
    await groups_with_members(client, 1, contacts)
    body = {"query": CONTACT, "variables": {"id": contacts[0]}}
    headers = {"Authorization": f"Bearer {client.token}", **({"Accept": accept} if accept else {})}
    responses = []
    for mode in ("on", "off"):
        application = app_factory(compiled_reads=mode)
        async with over_asgi(application) as http:
            await http.post("/graphql", json=body, headers=headers)
            if mode == "on":
                assert planned(application, CONTACT)
            responses.append(await http.post("/graphql", json=body, headers=headers))
    by_plan, by_resolvers = responses
    assert by_plan.status_code == by_resolvers.status_code == 200
    assert by_plan.headers["content-type"] == by_resolvers.headers["content-type"]
    assert by_plan.json() == by_resolvers.json()
    assert by_plan.json()["data"]["contact"]["lastName"] == "Jansen"
    assert by_plan.json()["data"]["contact"]["memberships"][0]["group"]["memberCount"] == 1
    # The plan answered it itself: none of its statements failed over to the resolvers.
    assert not [r for r in caplog.records if "planned read failed" in r.getMessage()]


async def test_a_planned_read_on_a_dropped_connection_leaves_the_request_to_the_resolvers(
    app: Any, client: GraphQLClient, database_url: str
):
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("connections dropped by the server: PostgreSQL's")
    contacts = await new_contact_ids(client, "Jansen")
    await client.data(CONTACT, {"id": contacts[0]})
    assert planned(app, CONTACT)
    killer = create_engine(database_url, isolation_level="AUTOCOMMIT")
    async with killer.connect() as connection:
        await connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    await killer.dispose()
    statuses = [(await client.post(CONTACT, {"id": contacts[0]})).status_code for _ in range(3)]
    # The plan's connection was dead: the resolvers met the same and answered 503 (as
    # they do), or another connection and the answer; never a server fault.
    assert set(statuses) <= {200, 503}, statuses
    answer = await client.data(CONTACT, {"id": contacts[0]})
    assert answer["contact"]["lastName"] == "Jansen"
