"""E-mail templates render within a budget (loop steps, range sizes, output, time), in a
worker thread: a template over the budget is refused when it is saved, with the reason,
and the service goes on answering meanwhile."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from graphql_api.email_templates.rendering import (
    MAX_OUTPUT,
    MAX_RANGE,
    MAX_SECONDS,
    MAX_STEPS,
    SAMPLE,
    TemplateTooCostly,
    check,
    render,
)
from graphql_api.testing import GraphQLClient, refused

CREATE = """mutation($input: EmailTemplateInput!) {
  createEmailTemplate(input: $input) { emailTemplate { id } errors { field code message } } }"""

NESTED_RANGES = "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"
SLOW = "{% for i in range(1000) %}{% for j in range(3) %}{{ ('x ' * 99000)|wordcount }}{% endfor %}{% endfor %}"
"""Within the steps, but each step is slow: stopped by the time budget."""


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (NESTED_RANGES, f"range gives at most {MAX_RANGE:,} numbers"),
        (
            "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
            f"it runs more than {MAX_STEPS:,} loop steps, calls and filters",
        ),
        ("{% for c in 'ab' * 90000 %}{% endfor %}", "loop steps"),
        (
            "{% for a in range(1000) %}{{ 'x' * 1000 }}{% endfor %}",
            f"it writes more than {MAX_OUTPUT:,} characters",
        ),
        ("{{ 'x' * 10**9 }}", "it builds a text or list longer than"),
        ("{{ 'x' * 1000000000 }}", "it builds a text or list longer than"),
        ("{{ 10 ** 100000 }}", "it makes a number larger than"),
        ("{{ 'x'|center(1000000000) }}", "would build too much"),
        ("{{ ('x' * 100000)|replace('x', 'y' * 100000) }}", "would build too much"),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "it builds a text or list longer than",
        ),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "it nests or builds too much"),
        ("{% for x in [1] recursive %}{{ loop([1, 1]) }}{% endfor %}", ""),
        (SLOW, f"it takes longer than {MAX_SECONDS:g} seconds"),
    ],
)
async def test_a_template_over_the_budget_is_too_costly(source: str, reason: str):
    started = time.monotonic()
    problem = await check(source)
    assert isinstance(problem, TemplateTooCostly), problem
    assert reason in str(problem)
    assert time.monotonic() - started < MAX_SECONDS + 1


@pytest.mark.parametrize(
    "source",
    [
        "Beste {{ contact.firstName }}, welkom bij {{ group.name|upper }}.",
        "{% for i in range(100) %}{{ loop.index }} {% endfor %}",
        "{{ 'ab' * 3 }} {{ 2 ** 10 }} {{ 1000000 + 1 }} {{ 12345678|filesizeformat }}",
        "{{ [contact.firstName, contact.lastName]|join(' ') ~ '!' }}",
        "{{ group.description or 'geen omschrijving'|truncate(10) }}",
    ],
)
async def test_ordinary_templates_fit_the_budget(source: str):
    assert await check(source) is None


async def test_sending_renders_within_the_same_budget():
    rendered = await render("Hoi {{ contact.firstName }}", "{{ 'a' * 3 }} & <b>", SAMPLE)
    assert (rendered.subject, rendered.text) == ("Hoi Anna", "aaa & <b>")
    with pytest.raises(TemplateTooCostly):
        await render("s", NESTED_RANGES, SAMPLE)


async def test_a_costly_template_is_refused_when_saved_and_changes_nothing(
    app: Any, client: GraphQLClient
):
    started = time.monotonic()
    errors = await refused(
        app, client, CREATE, {"input": {"name": "Duur", "subject": "s", "body": NESTED_RANGES}}
    )
    assert time.monotonic() - started < 1.0, "refused at once, not after 10 s of looping"
    assert [(e["field"], e["code"]) for e in errors] == [(["input", "body"], "TEMPLATE_TOO_COSTLY")]
    assert errors[0]["message"] == (
        f"The body cannot be rendered: range gives at most {MAX_RANGE:,} numbers."
    )


async def test_health_answers_while_a_slow_template_is_checked(
    client: GraphQLClient, http: httpx.AsyncClient
):
    saving = asyncio.create_task(
        client.data(CREATE, {"input": {"name": "Traag", "subject": "s", "body": SLOW}})
    )
    await asyncio.sleep(0.2)  # the check is under way in its thread
    waits = []
    while not saving.done():
        started = time.monotonic()
        response = await http.get("/health")
        waits.append(time.monotonic() - started)
        assert response.status_code == 200
        await asyncio.sleep(0.05)
    payload = (await saving)["createEmailTemplate"]
    assert [e["code"] for e in payload["errors"]] == ["TEMPLATE_TOO_COSTLY"]
    assert len(waits) >= 5, "the check took its time"
    assert max(waits) < 0.5, waits
