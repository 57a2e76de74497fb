"""GraphiQL's page and files, served from the package: what the page loads, under which
Content-Security-Policy and caching, and that its example tabs run against the schema they
are shown with. tests/test_browser.py drives the page in a real browser."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from graphql import parse

from graphql_api.testing import GraphQLClient, new_contact_id, portal_client
from graphql_api.web.graphiql import CONTENT_SECURITY_POLICY, FOREVER

HTML = {"Accept": "text/html"}


class Page(HTMLParser):
    """What a page loads (every ``src`` and ``href``), its scripts and its config block."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.config: dict[str, Any] = {}
        self._in_config = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.loads += [value for name, value in attrs if name in ("src", "href") and value]
        if tag == "script":
            self.scripts.append(attributes)
            self._in_config = attributes.get("id") == "graphiql-config"

    def handle_data(self, data: str) -> None:
        if self._in_config:
            self.config = json.loads(data)
            self._in_config = False


async def page(http: httpx.AsyncClient, path: str) -> tuple[httpx.Response, Page]:
    response = await http.get(path, headers=HTML)
    assert response.status_code == 200
    return response, Page(response.text)


@pytest.mark.parametrize(
    ("path", "title", "tabs"),
    [
        ("/graphql", "Staff API", ["GroupPicker", "CompositeGroups", "ContactGroups"]),
        ("/portal/graphql", "Customer portal", ["Login", "MyGroups", "VisibleGroups"]),
    ],
)
async def test_each_endpoint_has_its_page_with_its_own_example_tabs(
    http: httpx.AsyncClient, path: str, title: str, tabs: list[str]
):
    response, shown = await page(http, path)
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert f"<title>{title} · GraphiQL</title>" in response.text
    names = [parse(tab["query"]).definitions[0].name.value for tab in shown.config["tabs"]]
    assert names == tabs


@pytest.mark.parametrize("path", ["/graphql", "/portal/graphql"])
async def test_the_page_loads_nothing_from_elsewhere_and_runs_no_inline_script(
    http: httpx.AsyncClient, path: str
):
    response, shown = await page(http, path)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-cache"
    assets = [url for url in shown.loads if url != "data:,"]  # the empty icon
    assert len(assets) == 6
    assert all(url.startswith("/static/graphiql/") and "?v=" in url for url in assets), assets
    for script in shown.scripts:
        assert script.get("src") or script.get("type") == "application/json", script


@pytest.mark.parametrize("dev_mode", [False, True])
async def test_the_files_need_no_token_and_are_cached_by_their_digest(
    app_factory: Any, dev_mode: bool
):
    app = app_factory(dev_mode=dev_mode)
    # Development mode answers only for localhost (DNS rebinding).
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        _, shown = await page(http, "/graphql")
        for url in (url for url in shown.loads if url.startswith("/static/")):
            served = await http.get(url)
            assert served.status_code == 200, url
            assert served.headers["cache-control"] == FOREVER
            assert served.headers["x-content-type-options"] == "nosniff"
            kind = "text/css" if url.split("?")[0].endswith(".css") else "text/javascript"
            assert served.headers["content-type"].startswith(kind)
            path = url.split("?")[0]
            for other in (path, f"{path}?v=0000000000000000"):
                revalidated = await http.get(other)
                assert revalidated.headers["cache-control"] == "no-cache", other
                assert revalidated.content == served.content
            unchanged = await http.get(url, headers={"If-None-Match": served.headers["etag"]})
            assert unchanged.status_code == 304


async def test_only_the_packaged_files_are_served(http: httpx.AsyncClient):
    for path in [
        "/static/graphiql/nothing.js",
        "/static/graphiql/%2e%2e/page.html",
        "/static/graphiql/..%2f__init__.py",
        "/static/other.js",
    ]:
        assert (await http.get(path)).status_code == 404, path
    refused = await http.post("/static/graphiql/boot.js", content=b"x")
    assert refused.status_code == 405


async def test_every_staff_example_runs_against_the_served_schema(
    http: httpx.AsyncClient, client: GraphQLClient
):
    _, shown = await page(http, "/graphql")
    for tab in shown.config["tabs"]:
        await client.data(tab["query"], json.loads(tab.get("variables") or "{}"))


async def test_every_portal_example_runs_against_the_served_schema(
    http: httpx.AsyncClient, client: GraphQLClient
):
    contact = await new_contact_id(client, firstName="Iris", email="iris@example.nl")
    session = await portal_client(client, contact)
    _, shown = await page(http, "/portal/graphql")
    answers = [
        await session.data(tab["query"], json.loads(tab.get("variables") or "{}"))
        for tab in shown.config["tabs"]
    ]
    assert answers[0]["portalLogin"]["errors"][0]["code"] == "INVALID_CREDENTIALS"
    assert answers[1]["me"]["email"] == "iris@example.nl"
