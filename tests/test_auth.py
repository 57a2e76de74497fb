"""Bearer tokens: no token or a wrong one gets HTTP 401 and no data; the token's user acts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from graphql_api.graphql_base.relay import to_global_id
from graphql_api.settings import Settings
from graphql_api.testing import GROUP_COUNT, GraphQLClient, make_user, new_group
from graphql_api.web.app import create_app


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer gapi_wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "gapi_no_scheme"},
    ],
)
async def test_requests_without_a_valid_token_get_401(
    http: httpx.AsyncClient, admin: tuple[int, str], headers: dict[str, str]
):
    response = await http.post("/graphql", json={"query": GROUP_COUNT}, headers=headers)
    assert_unauthenticated(response)


def assert_unauthenticated(response: httpx.Response) -> None:
    """HTTP 401 with a Bearer challenge, no data, and the UNAUTHENTICATED code."""
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_get_queries_need_a_token_too(http: httpx.AsyncClient, admin: tuple[int, str]):
    response = await http.get("/graphql", params={"query": GROUP_COUNT})
    assert response.status_code == 401
    response = await http.get(
        "/graphql", params={"query": GROUP_COUNT}, headers={"Authorization": f"Bearer {admin[1]}"}
    )
    assert response.status_code == 200
    assert response.json()["data"]["groups"]["totalCount"] == 0


async def test_graphiql_page_is_served_to_browsers(http: httpx.AsyncClient):
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


@pytest.mark.parametrize("accept", ["text/html", "*/*", "text/html,application/json"])
async def test_a_browser_get_with_a_query_needs_a_token(
    http: httpx.AsyncClient, admin: tuple[int, str], accept: str
):
    response = await http.get(
        "/graphql", params={"query": "{ users { email } }"}, headers={"Accept": accept}
    )
    assert response.status_code == 401
    assert "example.coop" not in response.text


async def test_the_token_owner_is_the_acting_user(app: Any, http: httpx.AsyncClient):
    _, token = await make_user(app, "Anna de Vries", "anna@example.coop")
    client = GraphQLClient(http, token)
    group = await new_group(client, name="Van Anna")
    assert group["createdBy"]["name"] == "Anna de Vries"
    assert (await client.data("{ viewer { name email } }"))["viewer"] == {
        "name": "Anna de Vries",
        "email": "anna@example.coop",
    }


async def test_a_deactivated_users_token_gets_401_at_once(
    app: Any, http: httpx.AsyncClient, admin: tuple[int, str]
):
    user_id, token = await make_user(app, "Anna de Vries", "anna@example.coop")
    headers = {"Authorization": f"Bearer {token}"}
    response = await http.post("/graphql", json={"query": GROUP_COUNT}, headers=headers)
    assert response.status_code == 200
    deactivated = await GraphQLClient(http, admin[1]).data(
        "mutation($id: ID!) { updateUser(id: $id, input: {isActive: false}) { errors { code } } }",
        {"id": to_global_id("User", user_id)},
    )
    assert deactivated == {"updateUser": {"errors": []}}

    assert_unauthenticated(
        await http.post("/graphql", json={"query": GROUP_COUNT}, headers=headers)
    )
    other = await http.post(
        "/graphql", json={"query": GROUP_COUNT}, headers={"Authorization": f"Bearer {admin[1]}"}
    )
    assert other.status_code == 200, "only the deactivated user is shut out"


async def test_development_mode_acts_as_the_first_admin(database_url: str, app: Any):
    await make_user(app, "Pieter Jansen", "pieter@example.coop")
    await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    dev_app = create_app(Settings(database_url=database_url, dev_mode=True))
    transport = httpx.ASGITransport(app=dev_app)
    # Development mode answers only requests for this machine (docs/reliability.md).
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        client = GraphQLClient(http, token=None)
        assert (await client.data("{ viewer { name } }"))["viewer"]["name"] == "Johannes Frölich"
        wrong = await http.post(
            "/graphql", json={"query": GROUP_COUNT}, headers={"Authorization": "Bearer gapi_wrong"}
        )
        assert wrong.status_code == 401
    await dev_app.state.engine.dispose()


async def test_tokens_are_stored_hashed(app: Any, admin: tuple[int, str]):
    from sqlalchemy import select

    from graphql_api.users.models import ApiToken

    async with app.state.sessions() as session:
        stored = list(await session.scalars(select(ApiToken.token_hash)))
    assert stored and admin[1] not in stored
    assert all(len(h) == 64 for h in stored)
