"""Text is clean everywhere: a NUL or half of a surrogate pair in any input is refused
before anything runs (INVALID_TEXT, nothing changed, on both databases); names refuse
control characters, bidirectional controls and text that shows nothing; searches are
bounded."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from graphql_api.kernel.errors import ErrorCode, Problem, Problems
from graphql_api.kernel.validation import MAX_SEARCH_LENGTH, clean_text, label_problem
from graphql_api.portal.passwords import check_policy
from graphql_api.testing import (
    CREATE_CONTACT,
    CREATE_EMAIL_TEMPLATE,
    CREATE_GROUP,
    UPDATE_CONTACT,
    UPDATE_GROUP,
    GraphQLClient,
    new_contact_id,
    new_group_id,
    refused,
    unchanged,
)

GRAPHQL_RESPONSE = "application/graphql-response+json"
NUL, SURROGATE = "a\x00b", "a\ud800b"

CREATE_STAFF_ROLE = """mutation($input: StaffRoleInput!) {
  createStaffRole(input: $input) { errors { field code message } } }"""
CREATE_USER = """mutation($input: CreateUserInput!) {
  createUser(input: $input) { errors { field code message } } }"""
CREATE_TOKEN = """mutation($input: CreateApiTokenInput!) {
  createApiToken(input: $input) { errors { field code message } } }"""
CONTACTS = "query($search: String) { contacts(search: $search) { totalCount } }"
GROUPS = "query($filter: GroupFilter) { groups(filter: $filter) { totalCount } }"
MEMBERS = """query($id: ID!, $search: String) { group(id: $id) {
  members(search: $search) { totalCount } } }"""


def inputs(bad: str, ids: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """Every kind of text input, each holding ``bad``: names, descriptions, templates,
    e-mails, permissions, filter values, ids, searches."""
    condition = {"field": "city", "op": "EQ", "value": bad}
    return [
        (CREATE_GROUP, {"input": {"name": bad}}),
        (CREATE_GROUP, {"input": {"name": "Ok", "description": bad}}),
        (CREATE_GROUP, {"input": {"name": "Ok", "filter": {"condition": condition}}}),
        (
            CREATE_GROUP,
            {
                "input": {
                    "name": "Ok",
                    "filter": {
                        "condition": {**condition, "value": None, "op": "IN", "values": ["x", bad]}
                    },
                }
            },
        ),
        (CREATE_GROUP, {"input": {"name": "Ok", "neighbourhoodRole": bad}}),
        (UPDATE_GROUP, {"id": ids["group"], "input": {"description": bad}}),
        (UPDATE_GROUP, {"id": bad, "input": {"description": "x"}}),
        (CREATE_CONTACT, {"input": {"lastName": bad}}),
        (CREATE_CONTACT, {"input": {"lastName": "Ok", "email": f"{bad}@example.nl"}}),
        (UPDATE_CONTACT, {"id": ids["contact"], "input": {"city": bad}}),
        (CREATE_EMAIL_TEMPLATE, {"input": {"name": "T", "subject": "S", "body": bad}}),
        (CREATE_STAFF_ROLE, {"input": {"name": "Rol", "permissions": [bad]}}),
        (CREATE_USER, {"input": {"name": bad, "email": "x@example.nl", "roleId": "x"}}),
        (CREATE_TOKEN, {"input": {"name": bad}}),
        (CONTACTS, {"search": bad}),
        (GROUPS, {"filter": {"search": bad}}),
        (MEMBERS, {"id": ids["group"], "search": bad}),
    ]


async def post_raw(
    http: httpx.AsyncClient, token: str | None, body: dict[str, Any], path: str = "/graphql"
) -> httpx.Response:
    """Sent as JSON with escapes, as a client would send a lone surrogate."""
    headers = {"Content-Type": "application/json", "Accept": GRAPHQL_RESPONSE}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return await http.post(path, content=json.dumps(body), headers=headers)


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
async def test_unstorable_text_in_any_input_is_refused_before_anything_runs(
    app: Any, client: GraphQLClient, bad: str
):
    ids = {
        "group": await new_group_id(client, name="Bestaand"),
        "contact": await new_contact_id(client, lastName="Jansen"),
    }
    for document, variables in inputs(bad, ids):
        async with unchanged(app):
            response = await post_raw(
                client.http, client.token, {"query": document, "variables": variables}
            )
        assert response.status_code == 400, (document, variables, response.text)
        answer = response.json()
        assert "data" not in answer
        [error] = answer["errors"]
        assert error["extensions"] == {"code": "INVALID_TEXT"}, (variables, error)
        assert error["message"].startswith("Variable $"), error


async def test_unstorable_text_in_a_string_of_the_document_is_refused(
    app: Any, client: GraphQLClient
):
    async with unchanged(app):
        response = await post_raw(
            client.http,
            client.token,
            {"query": 'mutation { createGroup(input: {name: "a\\u0000b"}) { errors { code } } }'},
        )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "INVALID_TEXT"}
    assert "NUL" in error["message"]


async def test_the_portal_refuses_unstorable_text_too(app: Any, http: httpx.AsyncClient):
    login = """mutation($e: String!, $p: String!) { portalLogin(email: $e, password: $p) {
      sessionToken errors { code } } }"""
    async with unchanged(app):
        response = await post_raw(
            http, None, {"query": login, "variables": {"e": "a@b.nl", "p": NUL}}, "/portal/graphql"
        )
    answer = response.json()
    assert "data" not in answer, "never executed: GraphQL over HTTP answers no data"
    assert answer["errors"][0]["extensions"] == {"code": "INVALID_TEXT"}


NOT_NAMES = [
    "Buurt\tteam",
    "Buurt\x07team",
    "Buurt\u202eteam",  # right-to-left override
    "Buurt\u2066team",  # left-to-right isolate
    "\u200b\u200b",  # zero-width spaces alone
    "\u2060\ufeff",  # word joiner and zero-width no-break space
    "\u3164",  # Hangul filler
]


@pytest.mark.parametrize("name", NOT_NAMES)
def test_a_name_shows_plainly_what_it_is(name: str):
    assert label_problem(name) is not None
    problems = Problems()
    assert clean_text(problems, ["name"], name, max_length=200, name=True) is None
    [problem] = problems.items
    assert (problem.field, problem.code) == (("name",), ErrorCode.INVALID_TEXT)


@pytest.mark.parametrize("name", ["Buurtteam Oost", "Zoë & Jürgen", "北京", "عربي", "👩‍👩‍👧 Gezin"])
def test_ordinary_names_pass(name: str):
    assert label_problem(name) is None


def test_other_text_keeps_its_lines_but_not_nul():
    problems = Problems()
    assert clean_text(problems, ["description"], "Regel 1\nRegel 2\t!", max_length=50) == (
        "Regel 1\nRegel 2\t!"
    )
    assert clean_text(problems, ["description"], "x\x00", max_length=50) is None
    assert problems.items == [
        Problem(
            ("description",),
            ErrorCode.INVALID_TEXT,
            "description holds a NUL character (U+0000) at position 1.",
        )
    ]


@pytest.mark.parametrize("name", NOT_NAMES[:3] + NOT_NAMES[4:5])
async def test_every_kind_of_name_refuses_what_does_not_show(
    app: Any, client: GraphQLClient, name: str
):
    for document, variables, path in [
        (CREATE_GROUP, {"input": {"name": name}}, ["input", "name"]),
        (CREATE_STAFF_ROLE, {"input": {"name": name, "permissions": []}}, ["input", "name"]),
        (CREATE_TOKEN, {"input": {"name": name}}, ["input", "name"]),
        (
            CREATE_EMAIL_TEMPLATE.replace("errors { field code }", "errors { field code message }"),
            {"input": {"name": name, "subject": "S", "body": "B"}},
            ["input", "name"],
        ),
        (CREATE_CONTACT, {"input": {"lastName": name}}, ["input", "lastName"]),
    ]:
        errors = await refused(app, client, document, variables)
        assert [(e["field"], e["code"]) for e in errors] == [(path, "INVALID_TEXT")], errors


async def test_a_description_may_hold_lines(client: GraphQLClient):
    data = await client.data(
        CREATE_GROUP, {"input": {"name": "Regels", "description": "Een\nTwee"}}
    )
    assert data["createGroup"]["group"]["description"] == "Een\nTwee"


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        (CONTACTS, lambda term, _: {"search": term}),
        (GROUPS, lambda term, _: {"filter": {"search": term}}),
        (MEMBERS, lambda term, group: {"id": group, "search": term}),
    ],
)
async def test_a_search_is_bounded(client: GraphQLClient, document: str, variables: Any):
    group = await new_group_id(client, name="Leden")
    longest = "a" * MAX_SEARCH_LENGTH
    assert "errors" not in await client.execute(document, variables(longest, group))
    for term in ("a" * (MAX_SEARCH_LENGTH + 1), "a" * 50_000):
        body = await client.execute(document, variables(term, group))
        [error] = body["errors"]
        assert error["extensions"] == {"code": "TOO_LONG"}
        assert error["message"] == (
            f"search is {len(term)} characters long; at most {MAX_SEARCH_LENGTH} are allowed."
        )


def test_a_password_that_cannot_be_stored_is_refused_by_the_domain_too():
    problems = Problems()
    check_policy(problems, "password", "tien tekens\x00", None)
    assert [(p.field, p.code) for p in problems.items] == [(("password",), ErrorCode.INVALID_TEXT)]
