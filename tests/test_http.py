"""GraphQL over HTTP: media types, status codes, and a code on every error."""

from __future__ import annotations

import httpx
import pytest

from graphql_api.web.endpoint import accepted_media_type

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
NODE = "query($id: ID!) { node(id: $id) { id } }"


async def post(
    http: httpx.AsyncClient, token: str, body: object, accept: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if accept is not None:
        headers["Accept"] = accept
    return await http.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{ roles { key "}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ nothing }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": NODE, "variables": {}}, "BAD_USER_INPUT"),
        ({"query": NODE, "variables": {"id": ["a", "list"]}}, "BAD_USER_INPUT"),
    ],
)
async def test_a_request_that_never_ran_is_400_without_data(
    http: httpx.AsyncClient, admin: tuple[int, str], body: dict, code: str
):
    for accept, status, media_type in [
        (GRAPHQL_RESPONSE, 400, GRAPHQL_RESPONSE),
        (JSON, 200, JSON),
        (None, 200, JSON),
    ]:
        response = await post(http, admin[1], body, accept)
        assert response.status_code == status, accept
        assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
        answer = response.json()
        assert "data" not in answer, "nothing ran, so not even null"
        assert [e["extensions"]["code"] for e in answer["errors"]] == [code]


async def test_an_error_at_a_field_is_200_with_data(
    http: httpx.AsyncClient, admin: tuple[int, str]
):
    body = {"query": '{ me { permissions } group(id: "not an id") { name } }'}
    response = await post(http, admin[1], body, GRAPHQL_RESPONSE)
    assert response.status_code == 200
    answer = response.json()
    assert answer["data"]["group"] is None and answer["data"]["me"]["permissions"]
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["INVALID_ID"]


async def test_a_request_refused_before_graphql_is_an_error_with_a_code(
    http: httpx.AsyncClient, admin: tuple[int, str]
):
    headers = {"Authorization": f"Bearer {admin[1]}", "Accept": GRAPHQL_RESPONSE}
    for content, content_type in [("{not json", JSON), ("query=x", "text/plain")]:
        response = await http.post(
            "/graphql", content=content, headers={**headers, "Content-Type": content_type}
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
        [error] = response.json()["errors"]
        assert error["extensions"] == {"code": "BAD_REQUEST"}, error
    unknown = {"query": "query A { me { permissions } }", "operationName": "B"}
    response = await http.post("/graphql", json=unknown, headers=headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}
    mutation = await http.get(
        "/graphql",
        params={"query": 'mutation { revokeApiToken(id: "x") { errors { code } } }'},
        headers=headers,
    )
    assert mutation.status_code == 400
    assert mutation.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}


async def test_graphiql_is_still_a_page(http: httpx.AsyncClient):
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        (JSON, JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0.5, {JSON}", JSON),
        (f"{GRAPHQL_RESPONSE};q=0", JSON),
        (f"{GRAPHQL_RESPONSE};q=nonsense, */*", JSON),
        ("Application/GraphQL-Response+JSON; charset=utf-8", GRAPHQL_RESPONSE),
        ("text/html", JSON),
    ],
)
def test_the_media_type_follows_the_accept_header(accept: str | None, chosen: str):
    assert accepted_media_type(accept) == chosen
