"""E-mail templates: creating and listing, with bad input refused."""

from __future__ import annotations

import pytest

from graphql_api.testing import CREATE_EMAIL_TEMPLATE, UPDATE_GROUP, GraphQLClient, new_group_id


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
async def test_bad_templates_are_refused(
    client: GraphQLClient, values: dict[str, str], field: str, code: str
):
    await client.data(
        CREATE_EMAIL_TEMPLATE, {"input": {"name": "Welkom", "subject": "s", "body": "b"}}
    )
    data = await client.data(CREATE_EMAIL_TEMPLATE, {"input": values})
    assert data["createEmailTemplate"] == {
        "emailTemplate": None,
        "errors": [{"field": ["input", field], "code": code}],
    }
    assert len((await client.data("{ emailTemplates { id } }"))["emailTemplates"]) == 1


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
async def test_templates_that_cannot_render_are_refused(
    client: GraphQLClient, field: str, text: str, reason: str
):
    values = {"name": "Fout", "subject": "s", "body": "b", field: text}
    data = await client.data(CREATE_EMAIL_TEMPLATE, {"input": values})
    [error] = data["createEmailTemplate"]["errors"]
    assert error == {"field": ["input", field], "code": "INVALID"}
    full = await client.execute(
        "mutation($input: EmailTemplateInput!) { createEmailTemplate(input: $input) { errors { message } } }",
        {"input": values},
    )
    assert reason in full["data"]["createEmailTemplate"]["errors"][0]["message"]
    assert (await client.data("{ emailTemplates { id } }"))["emailTemplates"] == []


async def test_update_and_delete(client: GraphQLClient):
    data = await client.data(
        CREATE_EMAIL_TEMPLATE, {"input": {"name": "Welkom", "subject": "Hoi", "body": "Tekst"}}
    )
    template_id = data["createEmailTemplate"]["emailTemplate"]["id"]
    changed = await client.data(
        UPDATE, {"id": template_id, "input": {"subject": "Welkom bij {{ group.name }}"}}
    )
    assert changed["updateEmailTemplate"]["emailTemplate"] == {
        "name": "Welkom",
        "subject": "Welkom bij {{ group.name }}",
        "body": "Tekst",
    }
    refused = await client.data(UPDATE, {"id": template_id, "input": {"body": "{{ oops"}})
    assert refused["updateEmailTemplate"]["errors"][0]["code"] == "INVALID"

    group_id = await new_group_id(
        client, name="Nieuwsbrief", emailOnNewMember=True, newMemberEmailTemplateId=template_id
    )
    in_use = await client.data(DELETE, {"id": template_id})
    assert in_use["deleteEmailTemplate"]["errors"][0]["code"] == "TEMPLATE_IN_USE"
    assert "'Nieuwsbrief'" in in_use["deleteEmailTemplate"]["errors"][0]["message"]
    released = await client.data(
        UPDATE_GROUP,
        {"id": group_id, "input": {"emailOnNewMember": False, "newMemberEmailTemplateId": None}},
    )
    assert released["updateGroup"]["errors"] == []
    assert (await client.data(DELETE, {"id": template_id}))["deleteEmailTemplate"] == {
        "deletedId": template_id,
        "errors": [],
    }
    assert (await client.data(DELETE, {"id": template_id}))["deleteEmailTemplate"]["errors"][0][
        "code"
    ] == "NOT_FOUND"


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
    client: GraphQLClient, template_id: str | None, changes: dict, field: list[str], code: str
):
    first = await client.data(
        CREATE_EMAIL_TEMPLATE, {"input": {"name": "Welkom", "subject": "s", "body": "b"}}
    )
    await client.data(
        CREATE_EMAIL_TEMPLATE, {"input": {"name": "Ander", "subject": "s", "body": "b"}}
    )
    own_id = first["createEmailTemplate"]["emailTemplate"]["id"]
    data = await client.data(UPDATE, {"id": template_id or own_id, "input": changes})
    [error] = data["updateEmailTemplate"]["errors"]
    assert (error["field"], error["code"]) == (field, code)
    listed = await client.data("{ emailTemplates { name subject body } }")
    assert listed["emailTemplates"] == [
        {"name": "Ander", "subject": "s", "body": "b"},
        {"name": "Welkom", "subject": "s", "body": "b"},
    ]


async def test_delete_with_a_malformed_id(client: GraphQLClient):
    data = await client.data(DELETE, {"id": "Q29udGFjdDox"})  # a Contact id
    assert data["deleteEmailTemplate"]["errors"][0]["code"] == "INVALID_ID"
