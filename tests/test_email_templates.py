"""E-mail templates: creating and listing, with bad input refused."""

from __future__ import annotations

import pytest

from tests.conftest import GraphQLClient

CREATE = """
mutation($input: EmailTemplateInput!) {
  createEmailTemplate(input: $input) { emailTemplate { id name subject body } errors { field code } }
}"""


async def test_create_and_list(client: GraphQLClient):
    data = await client.data(
        CREATE, {"input": {"name": "Welkom", "subject": "Hoi", "body": "Tekst"}}
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
    await client.data(CREATE, {"input": {"name": "Welkom", "subject": "s", "body": "b"}})
    data = await client.data(CREATE, {"input": values})
    assert data["createEmailTemplate"] == {
        "emailTemplate": None,
        "errors": [{"field": ["input", field], "code": code}],
    }
    assert len((await client.data("{ emailTemplates { id } }"))["emailTemplates"]) == 1
