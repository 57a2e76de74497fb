"""Trusted documents: requests that name a document of the manifest by ``documentId``,
and a service that runs those alone (``GRAPHQL_API_TRUSTED_DOCUMENTS_ONLY``)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse, print_ast
from prometheus_client.parser import text_string_to_metric_families

from graphql_api.settings import Settings
from graphql_api.testing import (
    GraphQLClient,
    make_user,
    new_contact_id,
    new_group_id,
    portal_client,
    unchanged,
)
from graphql_api.web.trusted_documents import ManifestError, load_trusted_documents

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
# As GraphQL Code Generator's client preset writes them: printed, then hashed.
GROUP = print_ast(parse("query Group($id: ID!) { group(id: $id) { name memberCount } }"))
CREATE_GROUP = print_ast(
    parse(
        "mutation CreateGroup($name: String!) { createGroup(input: {name: $name}) "
        "{ group { name } errors { code } } }"
    )
)
PORTAL_ME = print_ast(parse("query PortalMe { me { displayName } }"))
RELAY_ID = hashlib.md5(b"query Roles { roles { key } }").hexdigest()
"""Relay's compiler names a document by the MD5 of its text: a custom id, taken as given."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """A manifest as GraphQL Code Generator writes ``persisted-documents.json``
    (``hashAlgorithm: 'sha256'``), with one id in the prefixed form and one document under a
    Relay-style id besides."""
    path = tmp_path / "persisted-documents.json"
    documents = {sha256(text): text for text in (GROUP, PORTAL_ME)}
    documents[f"sha256:{sha256(CREATE_GROUP)}"] = CREATE_GROUP
    documents[RELAY_ID] = "query Roles { roles { key } }"
    path.write_text(json.dumps(documents, indent=2))
    return path


@asynccontextmanager
async def http_of(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def served(
    app_factory: Callable[..., Any], manifest: Path
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, str]]:
    """An application with the manifest (every document may still run), an HTTP client
    of it and an admin's token."""
    app = app_factory(trusted_documents=manifest)
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    async with http_of(app) as http:
        yield app, http, token


@pytest.fixture
async def strict(
    served: tuple[Any, httpx.AsyncClient, str], app_factory: Callable[..., Any], manifest: Path
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An application on the same database that runs the manifest's documents only, and
    an HTTP client of it; ``served`` sets up data for it."""
    app = app_factory(trusted_documents=manifest, trusted_documents_only=True)
    async with http_of(app) as http:
        yield app, http


async def request(
    http: httpx.AsyncClient,
    token: str | None,
    parameters: dict[str, Any],
    *,
    method: str = "POST",
    accept: str = GRAPHQL_RESPONSE,
    path: str = "/graphql",
) -> httpx.Response:
    """Send GraphQL request parameters as a JSON body, or over GET in the query string."""
    headers = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token else {})}
    if method == "GET":
        query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in parameters.items()}
        return await http.get(path, params=query, headers=headers)
    return await http.post(path, json=parameters, headers=headers)


def refusal(response: httpx.Response) -> str:
    """The code of a request refused before it ran: 400 in the GraphQL response media
    type, one error, no data."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    answer = response.json()
    assert "data" not in answer, answer
    [error] = answer["errors"]
    return error["extensions"]["code"]


async def test_a_trusted_document_runs_by_its_id_over_post_and_get(
    served: tuple[Any, httpx.AsyncClient, str],
):
    _, http, token = served
    group_id = await new_group_id(GraphQLClient(http, token), name="Zonnepanelen")
    variables = {"id": group_id}
    expected = {"group": {"name": "Zonnepanelen", "memberCount": 0}}
    for method in ("POST", "GET"):
        for document_id in (f"sha256:{sha256(GROUP)}", sha256(GROUP)):
            parameters = {"documentId": document_id, "variables": variables}
            response = await request(http, token, parameters, method=method)
            assert response.status_code == 200, response.text
            assert response.json() == {"data": expected}, (method, document_id)
    named = {"documentId": RELAY_ID, "operationName": "Roles", "extensions": {}}
    roles = (await request(http, token, named, method="GET")).json()
    assert {"key": "coach"} in roles["data"]["roles"], roles
    # A browser following a link to a document gets its answer, not GraphiQL.
    link = await request(
        http,
        token,
        {"documentId": sha256(GROUP), "variables": variables},
        method="GET",
        accept="text/html,application/xhtml+xml,*/*;q=0.8",
    )
    assert link.json() == {"data": expected}


async def test_an_unknown_id_and_a_query_with_an_id_are_refused_with_a_code(
    served: tuple[Any, httpx.AsyncClient, str],
):
    app, http, token = served
    unknown = {"documentId": f"sha256:{sha256('{ roles { key } }')}"}
    both = {"query": GROUP, "documentId": sha256(GROUP), "variables": {"id": "x"}}
    async with unchanged(app):
        for parameters, code in [
            (unknown, "UNKNOWN_DOCUMENT"),
            ({"documentId": "nonsense"}, "UNKNOWN_DOCUMENT"),
            (both, "AMBIGUOUS_DOCUMENT"),
        ]:
            for method in ("POST", "GET"):
                response = await request(http, token, parameters, method=method)
                assert refusal(response) == code, (parameters, method)
            legacy = await request(http, token, parameters, accept=JSON)
            assert legacy.status_code == 200, "application/json answers 200, as for a parse error"
            assert legacy.json()["errors"][0]["extensions"]["code"] == code
        not_text = await request(http, token, {"documentId": 42})
        assert not_text.status_code == 400
        assert not_text.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}


async def test_without_a_manifest_every_id_is_unknown_and_queries_run(
    http: httpx.AsyncClient, client: GraphQLClient
):
    response = await request(http, client.token, {"documentId": sha256(GROUP)})
    assert refusal(response) == "UNKNOWN_DOCUMENT"
    assert await client.data("{ roles { key } }")


async def test_only_trusted_documents_run_when_only_they_may(
    served: tuple[Any, httpx.AsyncClient, str], strict: tuple[Any, httpx.AsyncClient]
):
    _, open_http, token = served
    group_id = await new_group_id(GraphQLClient(open_http, token), name="Wind")
    _, http = strict
    for query in [
        "{ roles { key } }",
        "{ __schema { queryType { name } } }",  # GraphiQL's introspection too
        GROUP + " ",  # the exact text only
    ]:
        response = await request(http, token, {"query": query, "variables": {"id": group_id}})
        assert refusal(response) == "DOCUMENT_NOT_TRUSTED", query
    by_text = await request(http, token, {"query": GROUP, "variables": {"id": group_id}})
    by_id = await request(http, token, {"documentId": sha256(GROUP), "variables": {"id": group_id}})
    assert by_text.json() == by_id.json() == {"data": {"group": {"name": "Wind", "memberCount": 0}}}
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


async def test_the_portal_shares_the_manifest(
    served: tuple[Any, httpx.AsyncClient, str], strict: tuple[Any, httpx.AsyncClient]
):
    _, open_http, token = served
    staff = GraphQLClient(open_http, token)
    contact_id = await new_contact_id(
        staff, firstName="Anna", lastName="Jansen", email="anna@example.coop"
    )
    session = (await portal_client(staff, contact_id)).token
    _, http = strict
    me = await request(http, session, {"documentId": sha256(PORTAL_ME)}, path="/portal/graphql")
    assert me.json() == {"data": {"me": {"displayName": "Anna Jansen"}}}
    ad_hoc = await request(
        http, session, {"query": "{ me { email } }"}, accept=JSON, path="/portal/graphql"
    )
    [error] = ad_hoc.json()["errors"]
    assert error["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"
    unknown = await request(http, session, {"documentId": "nonsense"}, path="/portal/graphql")
    assert unknown.json()["errors"][0]["extensions"]["code"] == "UNKNOWN_DOCUMENT"


async def test_a_trusted_mutation_changes_the_database_and_a_refused_one_nothing(
    served: tuple[Any, httpx.AsyncClient, str], strict: tuple[Any, httpx.AsyncClient]
):
    _, open_http, token = served
    app, http = strict
    created = await request(
        http, token, {"documentId": sha256(CREATE_GROUP), "variables": {"name": "Buurt"}}
    )
    assert created.json() == {"data": {"createGroup": {"group": {"name": "Buurt"}, "errors": []}}}
    groups = await GraphQLClient(open_http, token).data("{ groups { nodes { name } } }")
    assert groups == {"groups": {"nodes": [{"name": "Buurt"}]}}
    ad_hoc = 'mutation { createGroup(input: {name: "Ongevraagd"}) { group { name } } }'
    async with unchanged(app):
        for parameters, code in [
            ({"query": ad_hoc}, "DOCUMENT_NOT_TRUSTED"),
            ({"documentId": sha256(ad_hoc)}, "UNKNOWN_DOCUMENT"),
            ({"query": ad_hoc, "documentId": sha256(CREATE_GROUP)}, "AMBIGUOUS_DOCUMENT"),
        ]:
            response = await request(http, token, {**parameters, "variables": {"name": "X"}})
            assert refusal(response) == code, parameters


async def test_metrics_and_the_log_name_the_operation_of_a_trusted_document(
    served: tuple[Any, httpx.AsyncClient, str],
    strict: tuple[Any, httpx.AsyncClient],
    caplog: pytest.LogCaptureFixture,
):
    _, open_http, token = served
    group_id = await new_group_id(GraphQLClient(open_http, token), name="Wind")
    _, http = strict
    with caplog.at_level(logging.INFO, logger="graphql_api.requests"):
        await request(http, token, {"documentId": sha256(GROUP), "variables": {"id": group_id}})
        sneaky = {"query": "query Sneaky { users { email } }", "operationName": "Sneaky"}
        await request(http, token, sneaky, accept=JSON)  # 200, and still counted as refused
    lines = [r.fields for r in caplog.records if r.name == "graphql_api.requests"]  # type: ignore[attr-defined]
    assert [(line["operation"], line["outcome"]) for line in lines] == [
        ("Group", "ok"),
        ("Sneaky", "invalid"),
    ]
    metrics = (await http.get("/metrics")).text
    counted = {
        (sample.labels["operation"], sample.labels["outcome"]): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "graphql_api_requests_total"
    }
    assert counted == {("Group", "ok"): 1, ("Sneaky", "invalid"): 1}


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "cannot read"),
        ("{not json", "is no JSON: Expecting property name"),
        ('["query { roles { key } }"]', "is no JSON object of document ids to documents"),
        ('{"a1": {"query": "{ roles { key } }"}}', "document 'a1' of"),
        ('{"a1": "{ roles { key "}', "document 'a1' of"),
        (json.dumps({sha256("{ roles { key } }"): "{ roles { name } }"}), "does not match its id"),
        (json.dumps({f"sha256:{sha256('{ x }')}": "{ y }"}), "does not match its id"),
    ],
)
def test_a_manifest_that_cannot_be_used_is_refused_whole(
    tmp_path: Path, content: str | None, said: str
):
    path = tmp_path / "manifest.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ManifestError, match=said) as refused:
        load_trusted_documents(Settings(trusted_documents=path))
    assert "\n" not in str(refused.value)


async def test_the_example_of_the_docs_runs(
    served: tuple[Any, httpx.AsyncClient, str],
    app_factory: Callable[..., Any],
    repo_root: Path,
    tmp_path: Path,
):
    _, open_http, token = served
    group_id = await new_group_id(GraphQLClient(open_http, token), name="Zon op het dak")
    section = (repo_root / "docs" / "http.md").read_text().split("## Trusted documents")[1]
    example = section.split("```json\n")[1].split("```")[0]
    manifest = tmp_path / "trusted-documents.json"
    manifest.write_text(example)
    [document_id] = json.loads(example)
    app = app_factory(trusted_documents=manifest, trusted_documents_only=True)
    async with http_of(app) as http:
        parameters = {"documentId": f"sha256:{document_id}", "variables": {"id": group_id}}
        answer = await request(http, token, parameters)
    assert answer.json() == {"data": {"group": {"name": "Zon op het dak"}}}
