"""E-mail templates: creating and listing, with bad input refused."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api.testing import (
    CREATE_EMAIL_TEMPLATE,
    UPDATE_GROUP,
    GraphQLClient,
    new_group_id,
    new_template_id,
    refused,
)


async def test_create_and_list(client: GraphQLClient):
    data = await client.data(
        CREATE_EMAIL_TEMPLATE, {"input": {"name": "Welkom", "subject": "Hoi", "body": "Tekst"}}
    )
    template = data["createEmailTemplate"]["emailTemplate"]
    assert template["name"] == "Welkom"
    listed = await client.data("{ emailTemplates { id name } }")
    assert listed["emailTemplates"] == [{"id": template["id"], "name": "Welkom"}]
    node = await client.data(
        "query($id: ID!) { node(id: $id) { ... on EmailTemplate { subject } } }",
        {"id": template["id"]},
    )
    assert node["node"] == {"subject": "Hoi"}


@pytest.mark.parametrize(
    ("values", "field", "code"),
    [
        ({"name": " WELKOM ", "subject": "s", "body": "b"}, "name", "NAME_TAKEN"),
        ({"name": "", "subject": "s", "body": "b"}, "name", "REQUIRED"),
        ({"name": "n", "subject": "s" * 501, "body": "b"}, "subject", "TOO_LONG"),
        ({"name": "n", "subject": "s", "body": " "}, "body", "REQUIRED"),
    ],
)
async def test_bad_templates_are_refused_and_change_nothing(
    app: Any, client: GraphQLClient, values: dict[str, str], field: str, code: str
):
    await new_template_id(client, name="Welkom", subject="s", body="b")
    errors = await refused(app, client, CREATE_EMAIL_TEMPLATE, {"input": values})
    assert errors == [{"field": ["input", field], "code": code}]


UPDATE = """mutation($id: ID!, $input: UpdateEmailTemplateInput!) {
  updateEmailTemplate(id: $id, input: $input) { emailTemplate { name subject body } errors { field code message } } }"""
DELETE = "mutation($id: ID!) { deleteEmailTemplate(id: $id) { deletedId errors { field code message } } }"


@pytest.mark.parametrize(
    ("field", "text", "reason"),
    [
        ("body", "Beste {{ contact.firstName ", "line 1"),
        ("subject", "{% if %}", "line 1"),
        ("body", "{{ ''.__class__.__mro__ }}", "not allowed"),
        ("body", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "not allowed"),
        ("body", "{{ contact.shoeSize }}", "shoeSize"),
    ],
)
async def test_templates_that_cannot_render_are_refused_and_change_nothing(
    app: Any, client: GraphQLClient, field: str, text: str, reason: str
):
    values = {"name": "Fout", "subject": "s", "body": "b", field: text}
    errors = await refused(app, client, CREATE_EMAIL_TEMPLATE, {"input": values})
    assert errors == [{"field": ["input", field], "code": "INVALID"}]
    [error] = await refused(
        app,
        client,
        "mutation($input: EmailTemplateInput!) { createEmailTemplate(input: $input) { errors { message } } }",
        {"input": values},
    )
    assert reason in error["message"]


async def test_update_and_delete(app: Any, client: GraphQLClient):
    template_id = await new_template_id(client, name="Welkom", subject="Hoi", body="Tekst")
    changed = await client.data(
        UPDATE, {"id": template_id, "input": {"subject": "Welkom bij {{ group.name }}"}}
    )
    assert changed["updateEmailTemplate"]["emailTemplate"] == {
        "name": "Welkom",
        "subject": "Welkom bij {{ group.name }}",
        "body": "Tekst",
    }
    errors = await refused(app, client, UPDATE, {"id": template_id, "input": {"body": "{{ oops"}})
    assert errors[0]["code"] == "INVALID"

    group_id = await new_group_id(
        client, name="Nieuwsbrief", emailOnNewMember=True, newMemberEmailTemplateId=template_id
    )
    [in_use] = await refused(app, client, DELETE, {"id": template_id})
    assert in_use["code"] == "TEMPLATE_IN_USE"
    assert "'Nieuwsbrief'" in in_use["message"]
    released = await client.data(
        UPDATE_GROUP,
        {"id": group_id, "input": {"emailOnNewMember": False, "newMemberEmailTemplateId": None}},
    )
    assert released["updateGroup"]["errors"] == []
    assert (await client.data(DELETE, {"id": template_id}))["deleteEmailTemplate"] == {
        "deletedId": template_id,
        "errors": [],
    }
    [gone] = await refused(app, client, DELETE, {"id": template_id})
    assert gone["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("template_id", "changes", "field", "code"),
    [
        ("garbage", {"subject": "s"}, ["id"], "INVALID_ID"),
        ("RW1haWxUZW1wbGF0ZTo5OTk=", {"subject": "s"}, ["id"], "NOT_FOUND"),  # EmailTemplate:999
        (None, {"name": " ANDER "}, ["input", "name"], "NAME_TAKEN"),
        (None, {"subject": ""}, ["input", "subject"], "REQUIRED"),
        (None, {"subject": None}, ["input", "subject"], "REQUIRED"),
        (None, {"body": "b" * 100_001}, ["input", "body"], "TOO_LONG"),
    ],
)
async def test_bad_updates_are_refused_and_change_nothing(
    app: Any,
    client: GraphQLClient,
    template_id: str | None,
    changes: dict,
    field: list[str],
    code: str,
):
    own_id = await new_template_id(client, name="Welkom", subject="s", body="b")
    await new_template_id(client, name="Ander", subject="s", body="b")
    variables = {"id": template_id or own_id, "input": changes}
    [error] = await refused(app, client, UPDATE, variables)
    assert (error["field"], error["code"]) == (field, code)


async def test_delete_with_a_malformed_id_is_refused_and_changes_nothing(
    app: Any, client: GraphQLClient
):
    await new_template_id(client)
    errors = await refused(app, client, DELETE, {"id": "Q29udGFjdDox"})  # a Contact id
    assert errors[0]["code"] == "INVALID_ID"
