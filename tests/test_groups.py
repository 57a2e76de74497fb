"""Groups: the twelve settings of "Nieuwe groep", their rules, listing and deletion."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import pytest

from graphql_api.testing import (
    CREATE_GROUP,
    DELETE_GROUP,
    GROUP_FIELDS,
    UPDATE_GROUP,
    GraphQLClient,
    first_user_id,
    new_group,
    new_group_id,
    new_template_id,
    refused,
    unchanged,
)


async def test_create_group_with_every_setting(client: GraphQLClient, admin: tuple[int, str]):
    template_id = await new_template_id(client)
    responsible = await first_user_id(client)
    group = await new_group(
        client,
        name="  Nieuwsbrief  ",
        description="Maandelijkse nieuwsbrief",
        responsibleId=responsible,
        startDate="2025-09-02",
        endDate="2025-12-31",
        showOnPortal=True,
        showOnContact=True,
        editableOnPortal=True,
        emailOnNewMember=True,
        newMemberEmailTemplateId=template_id,
        closed=True,
    )
    assert group["name"] == "Nieuwsbrief"
    assert group["kind"] == "STATIC"
    assert group["description"] == "Maandelijkse nieuwsbrief"
    assert group["responsible"]["id"] == responsible
    assert (group["startDate"], group["endDate"]) == ("2025-09-02", "2025-12-31")
    assert group["showOnPortal"] and group["showOnContact"] and group["editableOnPortal"]
    assert group["emailOnNewMember"] and group["closed"]
    assert group["newMemberEmailTemplate"]["id"] == template_id
    assert group["neighbourhoodRole"] is None
    assert group["createdBy"]["name"] == "Johannes Frölich"
    assert group["createdAt"].endswith("+00:00")
    assert group["memberCount"] == 0

    again = await client.data(
        f"query($id: ID!) {{ group(id: $id) {{ {GROUP_FIELDS} }} node(id: $id) {{ id }} }}",
        {"id": group["id"]},
    )
    assert again["group"] == group
    assert again["node"]["id"] == group["id"]


async def test_defaults_are_off_and_empty(client: GraphQLClient):
    group = await new_group(client, name="Leeg")
    assert not any(
        group[f]
        for f in ("showOnPortal", "showOnContact", "editableOnPortal", "emailOnNewMember", "closed")
    )
    assert group["description"] is None and group["responsible"] is None


async def test_update_keeps_absent_settings_clears_null_ones_and_moves_updated_at_forward(
    client: GraphQLClient,
):
    template_id = await new_template_id(client)
    group = await new_group(
        client,
        name="Zonnepanelen",
        description="Collectief dak",
        startDate="2024-03-01",
        emailOnNewMember=True,
        newMemberEmailTemplateId=template_id,
    )
    data = await client.data(
        UPDATE_GROUP, {"id": group["id"], "input": {"description": None, "closed": True}}
    )
    updated = data["updateGroup"]["group"]
    assert data["updateGroup"]["errors"] == []
    assert updated["description"] is None
    assert updated["closed"] is True
    assert updated["name"] == "Zonnepanelen"
    assert updated["startDate"] == "2024-03-01"
    assert updated["newMemberEmailTemplate"]["id"] == template_id
    assert updated["createdAt"] == group["createdAt"]
    assert datetime.fromisoformat(updated["updatedAt"]) > datetime.fromisoformat(group["updatedAt"])

    data = await client.data(
        UPDATE_GROUP,
        {"id": group["id"], "input": {"emailOnNewMember": False, "newMemberEmailTemplateId": None}},
    )
    assert data["updateGroup"]["group"]["newMemberEmailTemplate"] is None


async def test_update_can_rename_to_own_name_in_other_case(client: GraphQLClient):
    group_id = await new_group_id(client, name="Buurtaanpak")
    data = await client.data(UPDATE_GROUP, {"id": group_id, "input": {"name": "BUURTAANPAK"}})
    assert data["updateGroup"]["group"]["name"] == "BUURTAANPAK"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("", "REQUIRED"),
        ("   ", "REQUIRED"),
        ("x" * 10_000, "TOO_LONG"),
        ("  nieuwsBRIEF ", "NAME_TAKEN"),
    ],
)
async def test_bad_names_are_refused_and_change_nothing(
    app: Any, client: GraphQLClient, name: str, code: str
):
    await new_group_id(client, name="Nieuwsbrief")
    errors = await refused(app, client, CREATE_GROUP, {"input": {"name": name}})
    assert errors == [{"field": ["input", "name"], "code": code, "message": errors[0]["message"]}]
    assert errors[0]["message"]


@pytest.mark.parametrize(
    "name", ["Nieuwe   Groep", "  nieuwe groep  ", "NIEUWE\u00a0GROEP", " Nieuwe \u2003 groep "]
)
async def test_names_clash_whatever_their_case_and_outer_or_inner_whitespace(
    app: Any, client: GraphQLClient, name: str
):
    await new_group_id(client, name="nieuwe groep")
    other = await new_group_id(client, name="Andere groep")
    for mutation, variables in (
        (CREATE_GROUP, {"input": {"name": name}}),
        (UPDATE_GROUP, {"id": other, "input": {"name": name}}),
    ):
        errors = await refused(app, client, mutation, variables)
        assert [(e["field"], e["code"]) for e in errors] == [(["input", "name"], "NAME_TAKEN")]


async def test_names_are_stored_trimmed_with_their_inner_whitespace(client: GraphQLClient):
    group = await new_group(client, name="  Nieuwe   Groep ")
    assert group["name"] == "Nieuwe   Groep"


async def test_email_on_new_member_without_a_template_is_refused_and_changes_nothing(
    app: Any, client: GraphQLClient
):
    errors = await refused(
        app, client, CREATE_GROUP, {"input": {"name": "Mail", "emailOnNewMember": True}}
    )
    assert errors[0]["code"] == "TEMPLATE_REQUIRED"
    assert errors[0]["field"] == ["input", "newMemberEmailTemplateId"]

    template_id = await new_template_id(client)
    group_id = await new_group_id(
        client, name="Mail", emailOnNewMember=True, newMemberEmailTemplateId=template_id
    )
    errors = await refused(
        app, client, UPDATE_GROUP, {"id": group_id, "input": {"newMemberEmailTemplateId": None}}
    )
    assert errors[0]["code"] == "TEMPLATE_REQUIRED"


async def test_end_date_before_start_date_is_refused_and_changes_nothing(
    app: Any, client: GraphQLClient
):
    errors = await refused(
        app,
        client,
        CREATE_GROUP,
        {"input": {"name": "Data", "startDate": "2025-09-02", "endDate": "2025-09-01"}},
    )
    assert errors[0] == {
        "field": ["input", "endDate"],
        "code": "END_BEFORE_START",
        "message": "endDate 2025-09-01 is before startDate 2025-09-02.",
    }
    group_id = await new_group_id(client, name="Data", startDate="2025-09-02")
    errors = await refused(
        app, client, UPDATE_GROUP, {"id": group_id, "input": {"endDate": "2025-01-01"}}
    )
    assert errors[0]["code"] == "END_BEFORE_START"


async def test_missing_and_malformed_references_are_refused_and_change_nothing(
    app: Any, client: GraphQLClient
):
    template_id = await new_template_id(client)
    missing_user = "VXNlcjo5OTk5"  # User:9999
    errors = await refused(
        app, client, CREATE_GROUP, {"input": {"name": "Ref", "responsibleId": missing_user}}
    )
    assert errors[0] == {
        "field": ["input", "responsibleId"],
        "code": "NOT_FOUND",
        "message": "No user with this id.",
    }

    errors = await refused(
        app, client, CREATE_GROUP, {"input": {"name": "Ref", "responsibleId": template_id}}
    )
    assert errors[0]["code"] == "INVALID_ID"
    assert errors[0]["field"] == ["input", "responsibleId"]

    errors = await refused(
        app,
        client,
        CREATE_GROUP,
        {"input": {"name": "Ref", "newMemberEmailTemplateId": "not-an-id"}},
    )
    assert errors[0]["code"] == "INVALID_ID"

    errors = await refused(
        app, client, CREATE_GROUP, {"input": {"name": "Ref", "neighbourhoodRole": "astronaut"}}
    )
    assert errors[0]["code"] == "UNKNOWN_ROLE"
    assert errors[0]["field"] == ["input", "neighbourhoodRole"]


async def test_null_for_a_boolean_setting_is_refused_and_changes_nothing(
    app: Any, client: GraphQLClient
):
    group_id = await new_group_id(client, name="Bool")
    errors = await refused(app, client, UPDATE_GROUP, {"id": group_id, "input": {"closed": None}})
    assert errors[0]["field"] == ["input", "closed"]
    assert errors[0]["code"] == "REQUIRED"


async def test_several_problems_are_reported_together(app: Any, client: GraphQLClient):
    errors = await refused(
        app,
        client,
        CREATE_GROUP,
        {"input": {"name": "", "description": "d" * 10_001, "emailOnNewMember": True}},
    )
    assert {e["code"] for e in errors} == {"REQUIRED", "TOO_LONG", "TEMPLATE_REQUIRED"}


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"input": {"name": 12}}, "String cannot represent a non string value"),
        ({"input": {"name": "A", "startDate": "2025-13-45"}}, "startDate"),
        ({"input": {"name": "A", "closed": "yes"}}, "Boolean cannot represent"),
        ({"input": {}}, "name"),
        ({"input": {"name": "A", "unknownSetting": 1}}, "unknownSetting"),
    ],
)
async def test_wrong_types_are_graphql_errors_and_change_nothing(
    app: Any, client: GraphQLClient, variables: dict[str, Any], expected: str
):
    async with unchanged(app):
        body = await client.execute(CREATE_GROUP, variables)
    assert body.get("data") is None
    assert expected in body["errors"][0]["message"]


async def test_update_and_delete_of_an_unknown_group_are_refused_and_change_nothing(
    app: Any, client: GraphQLClient
):
    await new_group_id(client, name="Bestaand")
    unknown = "R3JvdXA6OTk5"  # Group:999
    errors = await refused(app, client, UPDATE_GROUP, {"id": unknown, "input": {"closed": True}})
    assert errors == [{"field": ["id"], "code": "NOT_FOUND", "message": "No group with this id."}]
    async with unchanged(app):
        data = await client.data(DELETE_GROUP, {"id": "garbage"})
    assert data["deleteGroup"]["errors"][0]["code"] == "INVALID_ID"
    assert data["deleteGroup"]["deletedId"] is None


async def test_delete_group(client: GraphQLClient):
    group_id = await new_group_id(client, name="Weg")
    data = await client.data(DELETE_GROUP, {"id": group_id})
    assert data["deleteGroup"] == {"deletedId": group_id, "errors": []}
    gone = await client.data("query($id: ID!) { group(id: $id) { id } }", {"id": group_id})
    assert gone["group"] is None
    again = await client.data(DELETE_GROUP, {"id": group_id})
    assert again["deleteGroup"]["errors"][0]["code"] == "NOT_FOUND"


LIST = """
query($filter: GroupFilter, $orderBy: GroupOrder, $first: Int, $after: String) {
  groups(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    edges { cursor node { name } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}"""


async def names(client: GraphQLClient, **variables: Any) -> list[str]:
    data = await client.data(LIST, variables)
    return [edge["node"]["name"] for edge in data["groups"]["edges"]]


async def test_groups_filter_and_order(client: GraphQLClient):
    me = await first_user_id(client)
    await new_group_id(client, name="Bravo", closed=True)
    await new_group_id(client, name="alpha", responsibleId=me)
    await new_group_id(client, name="Charlie 50%")

    assert await names(client) == ["alpha", "Bravo", "Charlie 50%"]
    assert await names(client, orderBy="NAME_DESC") == ["Charlie 50%", "Bravo", "alpha"]
    assert await names(client, orderBy="CREATED_AT_ASC") == ["Bravo", "alpha", "Charlie 50%"]
    assert await names(client, orderBy="CREATED_AT_DESC") == ["Charlie 50%", "alpha", "Bravo"]
    assert await names(client, filter={"closed": False}) == ["alpha", "Charlie 50%"]
    assert await names(client, filter={"closed": True}) == ["Bravo"]
    assert await names(client, filter={"search": "ALP"}) == ["alpha"]
    assert await names(client, filter={"search": "50%"}) == ["Charlie 50%"]
    assert await names(client, filter={"search": "%"}) == ["Charlie 50%"]
    assert await names(client, filter={"responsibleId": me}) == ["alpha"]
    assert await names(client, filter={"kind": "STATIC", "closed": False, "search": "a"}) == [
        "alpha",
        "Charlie 50%",
    ]


@pytest.mark.parametrize("order", ["NAME_ASC", "NAME_DESC", "CREATED_AT_ASC", "CREATED_AT_DESC"])
async def test_groups_pagination_visits_every_group_once(client: GraphQLClient, order: str):
    for i in range(7):
        await new_group_id(client, name=f"Groep {i}")
    seen: list[str] = []
    after = None
    while True:
        data = await client.data(LIST, {"first": 3, "after": after, "orderBy": order})
        page = data["groups"]
        assert page["totalCount"] == 7
        seen += [edge["node"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(f"Groep {i}" for i in range(7))
    assert len(seen) == 7


def crafted(key: list) -> str:
    """A cursor made by hand, as an attacker would."""
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"first": 101}, "BAD_USER_INPUT"),
        ({"first": -1}, "BAD_USER_INPUT"),
        ({"after": "bm9wZQ=="}, "INVALID_CURSOR"),
        ({"after": crafted(["a", 10**30])}, "INVALID_CURSOR"),
        ({"after": crafted(["a", True])}, "INVALID_CURSOR"),
        ({"after": crafted(["a"])}, "INVALID_CURSOR"),
        (
            {"after": crafted(["2024-01-01T00:00:00", 1]), "orderBy": "CREATED_AT_ASC"},
            "INVALID_CURSOR",
        ),
        ({"after": crafted(["gisteren", 1]), "orderBy": "CREATED_AT_DESC"}, "INVALID_CURSOR"),
    ],
)
async def test_bad_paging_arguments(client: GraphQLClient, variables: dict[str, Any], code: str):
    body = await client.execute(LIST, variables)
    assert body["errors"][0]["extensions"]["code"] == code
