"""GraphiQL in a real browser: the distribution's headless Chromium against a real
`graphql-api serve`, with every request to another origin refused and recorded, as on a
machine without internet. Skipped where Chromium is missing, except in CI (CI=true), where
that fails: CI installs it (.ci/run)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Locator, Page, Route, async_playwright, expect

from graphql_api.web.graphiql import CONTENT_SECURITY_POLICY

OPEN_GROUPS = (
    "query OpenGroups($kind: GroupKind) { groups(filter: {kind: $kind, closed: false}) "
    "{ totalCount edges { node { name memberCount } } } }"
)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the browser tests: install Chromium (apt-get install chromium)")
        pytest.skip("the browser tests need Chromium (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium)
        yield launched
        await launched.close()


@dataclass
class Site:
    """A browser tab on the served site that lets no request leave it, and what it saw."""

    page: Page
    foreign: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def assert_offline_and_within_policy(self) -> None:
        assert self.foreign == [], "requests to another origin"
        assert self.violations == [], "Content-Security-Policy violations"
        assert self.errors == [], "script errors"

    def headers_editor(self) -> Locator:
        return self.page.locator(".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror")

    async def type_into(self, editor: Locator, text: str) -> None:
        """Types ``text`` into ``editor`` in place of what it holds, as a person would."""
        await editor.click()
        await self.page.keyboard.press("Control+A")
        await self.page.keyboard.press("Delete")
        await self.page.keyboard.type(text)

    async def result(self) -> dict[str, Any]:
        """The result pane's answer, once there is one."""
        pane = await self.page.locator(".result-window .CodeMirror").element_handle()
        await self.page.wait_for_function("pane => pane.CodeMirror.getValue() !== ''", arg=pane)
        return json.loads(await pane.evaluate("pane => pane.CodeMirror.getValue()"))

    async def local_storage(self) -> str:
        return await self.page.evaluate("JSON.stringify(window.localStorage)")


async def value_of(editor: Locator) -> str:
    return await editor.evaluate("element => element.CodeMirror.getValue()")


@pytest.fixture
async def site(browser: Browser, server: tuple[str, str]) -> AsyncIterator[Site]:
    url, _ = server
    context = await browser.new_context(viewport={"width": 1600, "height": 900})
    page = await context.new_page()
    seen = Site(page)

    async def guard(route: Route) -> None:
        if route.request.url.startswith(f"{url}/"):
            await route.continue_()
        else:
            seen.foreign.append(route.request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", guard)
    await context.expose_function("reportViolation", lambda seen_: seen.violations.append(seen_))
    await context.add_init_script(
        "document.addEventListener('securitypolicyviolation', event => "
        "window.reportViolation(event.violatedDirective + ' ' + event.blockedURI))"
    )
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and seen.violations.append(message.text)
        ),
    )
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    yield seen
    await context.close()


async def test_graphiql_runs_a_query_with_the_token_and_lists_the_schema(
    site: Site, server: tuple[str, str], repo_root: Path
):
    url, token = server
    page = site.page
    opened = await page.goto(f"{url}/graphql")
    assert opened is not None and opened.headers["content-security-policy"] == (
        CONTENT_SECURITY_POLICY
    )
    await expect(page.locator(".graphiql-tab-button")).to_have_text(
        ["GroupPicker", "CompositeGroups", "ContactGroups"]
    )
    await expect(site.headers_editor()).to_be_visible()
    await site.type_into(site.headers_editor(), json.dumps({"Authorization": f"Bearer {token}"}))

    await page.locator(".graphiql-tab-add").click()
    await site.type_into(page.locator(".graphiql-query-editor .CodeMirror"), OPEN_GROUPS)
    await page.keyboard.press("Escape")  # the completion list
    await page.get_by_role("button", name="Variables").click()
    await site.type_into(site.headers_editor(), '{"kind": "STATIC"}')
    await page.get_by_role("button", name="Prettify query (Shift-Ctrl-P)").click()
    await expect(page.get_by_role("tab", name="OpenGroups")).to_be_visible()
    await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    shown = await site.result()

    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        direct = await http.post(
            "/graphql",
            json={"query": OPEN_GROUPS, "variables": {"kind": "STATIC"}},
            headers={"Authorization": f"Bearer {token}"},
        )
        query_type = await http.post(
            "/graphql",
            json={"query": '{ __type(name: "Query") { fields { name } } }'},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert shown == direct.json()
    names = [edge["node"]["name"] for edge in shown["data"]["groups"]["edges"]]
    assert "Nieuwsbrief" in names and "Nieuwsbrief of warmtepomp" not in " ".join(names)

    # The schema was read again with the token typed: the docs list the Query type.
    await page.get_by_role("button", name="Show Documentation Explorer").click()
    await page.get_by_role("link", name="Query", exact=True).click()
    fields = page.locator(".graphiql-doc-explorer-field-name")
    await expect(fields).to_have_text(
        [f["name"] for f in query_type.json()["data"]["__type"]["fields"]]
    )

    # The same picture every run, so the README's stays as it is unless the page changes:
    # no schema being fetched (a spinning icon), no focused editor (its cursor blinks), no
    # hover, and the result's fold markers drawn (CodeMirror draws them after a pause).
    await expect(page.locator(".graphiql-spin")).to_have_count(0)
    await page.evaluate("document.activeElement.blur()")
    await page.mouse.move(0, 0)
    await expect(page.locator(".result-window .CodeMirror-foldgutter-open")).to_have_count(12)
    await page.screenshot(
        path=repo_root / "docs" / "graphiql.png", animations="disabled", caret="hide"
    )
    site.assert_offline_and_within_policy()


async def test_headers_are_kept_on_this_browser_only_when_the_box_is_ticked(
    site: Site, server: tuple[str, str]
):
    url, token = server
    page = site.page
    remember = page.get_by_label("Remember headers on this browser")
    await page.goto(f"{url}/graphql")
    await expect(remember).not_to_be_checked()
    await site.type_into(site.headers_editor(), json.dumps({"Authorization": f"Bearer {token}"}))
    await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    picked = (await site.result())["data"]["groups"]
    assert picked["totalCount"] == 3, "GroupPicker, with its variables: the search 'nieuws'"
    assert all("nieuws" in edge["node"]["name"].lower() for edge in picked["edges"])
    assert token not in await site.local_storage(), "not in the tabs, nor in the history"

    await page.reload()
    await expect(page.locator(".graphiql-tab-button")).to_have_count(3)
    assert token not in await value_of(site.headers_editor())
    assert token not in await site.local_storage()
    await expect(remember).not_to_be_checked()

    await remember.check()
    await site.type_into(site.headers_editor(), json.dumps({"Authorization": f"Bearer {token}"}))
    await page.wait_for_function("token => JSON.stringify(localStorage).includes(token)", arg=token)
    await page.reload()
    await expect(remember).to_be_checked()
    await expect(site.headers_editor()).to_contain_text(token)
    await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    assert "data" in await site.result(), "the kept token is sent"

    await remember.uncheck()
    assert token not in await site.local_storage(), "clearing the box forgets them"
    site.assert_offline_and_within_policy()


async def test_the_portal_page_has_its_own_tabs_and_works_offline_under_its_policy(
    site: Site, server: tuple[str, str]
):
    url, _ = server
    page = site.page
    await page.goto(f"{url}/graphql")
    await expect(page.locator(".graphiql-tab-button")).to_have_count(3)  # its tabs are stored
    opened = await page.goto(f"{url}/portal/graphql")
    assert opened is not None and opened.headers["content-security-policy"] == (
        CONTENT_SECURITY_POLICY
    )
    await expect(page.locator(".graphiql-tab-button")).to_have_text(
        ["Login", "MyGroups", "VisibleGroups"]
    )
    await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    [refused] = (await site.result())["data"]["portalLogin"]["errors"]
    assert refused["code"] == "INVALID_CREDENTIALS"
    site.assert_offline_and_within_policy()
