"""The query cost limit (docs/reliability.md, "Query cost"): a query is priced from its
document and variables before it runs, and one over ``GRAPHQL_API_MAX_QUERY_COST`` is
refused without a single SQL statement."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from graphql_api.testing import (
    GROUP_MEMBERS,
    GraphQLClient,
    StatementCounter,
    make_user,
    new_group_id,
)

RUNAWAY = """{ groups(first: 100) { nodes { members(first: 100) { nodes { groups {
  members(first: 10) { nodes { groups { name } } } } } } } } }"""
"""Depth 8, no alias: a billion objects to load, once."""
RUNAWAY_COST = 1 + 100 * 10 + 100 * 100 * 10 + 100 * 100 * 100 * 10 + 100**3 * 10 * 10


def _refusal(body: dict[str, Any]) -> dict[str, Any]:
    assert "data" not in body, "nothing ran, so not even null"
    [error] = body["errors"]
    assert error["extensions"]["code"] == "LIMIT_EXCEEDED", error
    return error


async def test_a_runaway_query_is_refused_at_once_before_any_sql(
    client: GraphQLClient, statements: StatementCounter
) -> None:
    timings = []
    for _ in range(3):
        with statements:
            started = time.perf_counter()
            body = await client.execute(RUNAWAY)
            timings.append(time.perf_counter() - started)
        assert statements.count == 0, statements.statements
    error = _refusal(body)
    assert error["extensions"] == {
        "code": "LIMIT_EXCEEDED",
        "cost": RUNAWAY_COST,
        "maxCost": 50_000,
    }
    assert error["message"] == (
        f"This query costs {RUNAWAY_COST:,}, over the limit of 50,000 "
        "(GRAPHQL_API_MAX_QUERY_COST): ask for smaller pages (first) or fewer nested lists."
    )
    assert min(timings) < 0.05, timings


async def test_the_refusal_is_400_for_graphql_response_json(client: GraphQLClient) -> None:
    response = await client.http.post(
        "/graphql",
        json={"query": RUNAWAY},
        headers={
            "Authorization": f"Bearer {client.token}",
            "Accept": "application/graphql-response+json",
        },
    )
    assert response.status_code == 400
    _refusal(response.json())


async def test_queries_within_the_limit_run(client: GraphQLClient) -> None:
    group = await new_group_id(client, name="Buurtteam")
    data = await client.data(GROUP_MEMBERS, {"id": group})
    assert data["group"]["memberCount"] == 0
    readme = """{ groups(filter: {closed: false}, orderBy: NAME_ASC, first: 50) {
      totalCount
      edges { cursor node { id name kind memberCount responsible { name } } }
      pageInfo { hasNextPage endCursor } } }"""
    assert (await client.data(readme))["groups"]["totalCount"] == 1


PRICED = [
    # A connection: 1 for its page, first (default 20) for its nodes.
    ("{ groups { nodes { name } } }", None, 1),
    ("{ groups { nodes { memberCount } } }", None, 1 + 20 * 10),
    ("query($n: Int) { groups(first: $n) { nodes { memberCount } } }", {"n": 5}, 1 + 5 * 10),
    ("query($n: Int = 3) { groups(first: $n) { nodes { memberCount } } }", None, 1 + 3 * 10),
    ("query($n: Int) { groups(first: $n) { nodes { memberCount } } }", {"n": None}, 201),
    # totalCount is one count query; pageInfo and cursors come with the page.
    (
        "{ groups(first: 4) { totalCount pageInfo { hasNextPage } "
        "edges { cursor node { memberCount } } } }",
        None,
        1 + 1 + 4 * 10,
    ),
    # Each alias runs; a fragment spread twice runs once, as execution merges it.
    (
        "{ a: groups(first: 2) { nodes { memberCount } } b: groups(first: 3) { nodes { id } } }",
        None,
        (1 + 2 * 10) + 1,
    ),
    (
        "{ groups(first: 2) { ...F ...F } } fragment F on GroupConnection { nodes { memberCount } }",
        None,
        1 + 2 * 10,
    ),
    (
        "{ groups(first: 2) { nodes { ... on Group { memberCount } n: memberCount } } }",
        None,
        1 + 2 * 10 * 2,
    ),
    # A list without pages may hold GRAPHQL_API_MAX_PAGE_SIZE objects.
    ("{ groups(first: 2) { nodes { composedOf { memberCount } } } }", None, 1 + 2 * (1 + 100 * 10)),
    # An interface: the costliest type that could come.
    (
        "query($id: ID!) { node(id: $id) { ... on Group { memberCount } "
        "...C } } fragment C on Contact { groups { memberCount } }",
        {"id": "R3JvdXA6MQ=="},
        1 + 10 + 100 * 10,
    ),
    # What is skipped costs nothing.
    (
        "query($s: Boolean!) { groups(first: 2) { nodes { memberCount @skip(if: $s) } } }",
        {"s": True},
        1,
    ),
    ("{ groups(first: 2) { nodes { memberCount @include(if: false) } } }", None, 1),
    # Introspection reads no data.
    ("{ __schema { types { fields { name } } } __typename }", None, 0),
]


@pytest.mark.parametrize(("query", "variables", "cost"), PRICED)
async def test_the_cost_follows_the_formula(
    app_factory: Callable[..., Any], query: str, variables: dict[str, Any] | None, cost: int
) -> None:
    """With a limit of -1 every query is refused, naming its cost."""
    app = app_factory(max_query_cost=-1)
    _, token = await make_user(app, "Johannes", "johannes@example.coop", admin=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        body = await GraphQLClient(http, token).execute(query, variables)
    assert _refusal(body)["extensions"]["cost"] == cost


async def test_a_query_at_the_limit_runs_and_one_above_is_refused(
    app_factory: Callable[..., Any],
) -> None:
    app = app_factory(max_query_cost=51)
    _, token = await make_user(app, "Johannes", "johannes@example.coop", admin=True)
    query = "query($n: Int) { groups(first: $n) { nodes { memberCount } } }"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        client = GraphQLClient(http, token)
        assert await client.data(query, {"n": 5}) == {"groups": {"nodes": []}}
        refused = _refusal(await client.execute(query, {"n": 6}))
    assert (refused["extensions"]["cost"], refused["extensions"]["maxCost"]) == (61, 51)


async def test_the_portal_has_the_same_limit(app_factory: Callable[..., Any]) -> None:
    app = app_factory(max_query_cost=0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        body = await GraphQLClient(http, None, path="/portal/graphql").execute(
            "{ groups { name isMember } }"
        )
    assert body["data"] is None  # the portal's answers always hold data
    [error] = body["errors"]
    assert error["extensions"] == {"code": "LIMIT_EXCEEDED", "cost": 1, "maxCost": 0}
