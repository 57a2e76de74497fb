"""Dynamic groups: stored filters, compiled to SQL, read back as written."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api.groups.filters import FilterOp
from graphql_api.testing import (
    CREATE_GROUP,
    GROUP_USED_BY,
    MEMBERSHIP_PATH,
    UPDATE_CONTACT,
    UPDATE_GROUP,
    GraphQLClient,
    member_names,
    new_contact_id,
    new_group_id,
    new_static_group_id,
    refused,
)

CONTACTS = [
    {
        "firstName": "Anna",
        "lastName": "Zonneveld",
        "city": "Zwolle",
        "postalCode": "8011 AB",
        "email": "anna@zon.nl",
    },
    {"firstName": "Bram", "lastName": "Molenaar", "city": "ZWOLLE", "postalCode": "8021 CD"},
    {
        "firstName": "Cor",
        "lastName": "de Wind",
        "city": "Deventer",
        "postalCode": "7411 EF",
        "email": "cor@wind.nl",
    },
    {
        "firstName": "Ölaf",
        "lastName": "Åberg",
        "city": "Utrecht",
        "postalCode": "3511 GH",
        "email": "",
    },
    {"kind": "ORGANISATION", "organisationName": "Zon BV", "city": "Zwolle"},
]
FILTER_FIELDS = """filter { all { condition { field op value values } not { condition { field op value } } }
                            any { condition { field op value values } } condition { field op value values } }"""


def cond(field: str, op: str, value: str | None = None, values: list[str] | None = None) -> dict:
    condition: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        condition["value"] = value
    if values is not None:
        condition["values"] = values
    return {"condition": condition}


@pytest.fixture
async def contacts(client: GraphQLClient) -> list[str]:
    return [await new_contact_id(client, **values) for values in CONTACTS]


async def preview(client: GraphQLClient, tree: dict) -> list[str]:
    data = await client.data(
        "query($f: ContactFilterInput) { contacts(filter: $f, first: 100) { nodes { displayName } } }",
        {"f": tree},
    )
    return [n["displayName"] for n in data["contacts"]["nodes"]]


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (cond("city", "EQ", "zwolle"), ["Anna Zonneveld", "Bram Molenaar", "Zon BV"]),
        (cond("city", "NEQ", "Zwolle"), ["Cor de Wind", "Ölaf Åberg"]),
        (cond("lastName", "CONTAINS", "OLEN"), ["Bram Molenaar"]),
        (cond("lastName", "NOT_CONTAINS", "o"), ["Cor de Wind", "Ölaf Åberg", "Zon BV"]),
        (cond("postalCode", "STARTS_WITH", "80"), ["Anna Zonneveld", "Bram Molenaar"]),
        (cond("email", "ENDS_WITH", "WIND.NL"), ["Cor de Wind"]),
        (cond("postalCode", "LT", "7500"), ["Cor de Wind", "Ölaf Åberg"]),
        (cond("postalCode", "GTE", "8021 cd"), ["Bram Molenaar"]),
        (cond("lastName", "GT", "z"), ["Anna Zonneveld", "Ölaf Åberg"]),
        (cond("city", "IN", values=["deventer", "UTRECHT"]), ["Cor de Wind", "Ölaf Åberg"]),
        (cond("email", "IS_EMPTY"), ["Bram Molenaar", "Ölaf Åberg", "Zon BV"]),
        (cond("email", "IS_NOT_EMPTY"), ["Anna Zonneveld", "Cor de Wind"]),
        (cond("firstName", "EQ", "ölaf"), ["Ölaf Åberg"]),
        (cond("lastName", "EQ", "ÅBERG"), ["Ölaf Åberg"]),
        (cond("kind", "EQ", "ORGANISATION"), ["Zon BV"]),
        (
            cond("kind", "IN", values=["PERSON"]),
            ["Anna Zonneveld", "Bram Molenaar", "Cor de Wind", "Ölaf Åberg"],
        ),
        (
            cond("createdAt", "GTE", "2000-01-01"),
            ["Anna Zonneveld", "Bram Molenaar", "Cor de Wind", "Ölaf Åberg", "Zon BV"],
        ),
        (cond("createdAt", "LT", "2000-01-01"), []),
        (
            {"all": [cond("city", "EQ", "Zwolle"), {"not": cond("kind", "EQ", "ORGANISATION")}]},
            ["Anna Zonneveld", "Bram Molenaar"],
        ),
        (
            {"any": [cond("city", "EQ", "Utrecht"), cond("firstName", "STARTS_WITH", "an")]},
            ["Anna Zonneveld", "Ölaf Åberg"],
        ),
        (
            {"not": {"any": [cond("city", "EQ", "Zwolle"), cond("city", "EQ", "Utrecht")]}},
            ["Cor de Wind"],
        ),
        (cond("lastName", "CONTAINS", "%"), []),
    ],
)
async def test_operators(
    client: GraphQLClient, contacts: list[str], tree: dict, expected: list[str]
):
    assert await preview(client, tree) == expected


async def test_dynamic_group_reads_back_its_filter_and_stays_live(
    client: GraphQLClient, contacts: list[str]
):
    tree = {"all": [cond("city", "EQ", "Zwolle"), {"not": cond("kind", "EQ", "ORGANISATION")}]}
    data = await client.data(
        f"mutation($i: CreateGroupInput!) {{ createGroup(input: $i) {{ group {{ id kind {FILTER_FIELDS} }} errors {{ code message }} }} }}",
        {"i": {"name": "Zwolse personen", "filter": tree}},
    )
    group = data["createGroup"]["group"]
    assert group["kind"] == "DYNAMIC"
    stored = group["filter"]
    assert stored["all"][0]["condition"] == {
        "field": "city",
        "op": "EQ",
        "value": "Zwolle",
        "values": None,
    }
    assert stored["all"][1]["not"]["condition"] == {
        "field": "kind",
        "op": "EQ",
        "value": "ORGANISATION",
    }
    assert stored["any"] is None and stored["condition"] is None
    assert await member_names(client, group["id"]) == ["Zonneveld", "Molenaar"]

    moved = await client.data(UPDATE_CONTACT, {"id": contacts[1], "input": {"city": "Deventer"}})
    assert moved["updateContact"]["errors"] == []
    assert await member_names(client, group["id"]) == ["Zonneveld"]

    data = await client.data(
        UPDATE_GROUP, {"id": group["id"], "input": {"filter": cond("city", "EQ", "Deventer")}}
    )
    assert data["updateGroup"]["errors"] == []
    assert await member_names(client, group["id"]) == ["Molenaar", "de Wind"]


async def test_member_of_filters_follow_other_groups_and_cycles_are_refused(
    app: Any, client: GraphQLClient, contacts: list[str]
):
    board = await new_static_group_id(client, "Bestuur", [contacts[0], contacts[2]])
    union = await new_group_id(client, name="Bestuur samengesteld", composedOfIds=[board])
    tree = {"all": [cond("memberOf", "EQ", union), cond("email", "IS_NOT_EMPTY")]}
    group = await new_group_id(client, name="Bestuur met e-mail", filter=tree)
    assert await member_names(client, group) == ["Zonneveld", "de Wind"]
    outsiders = await new_group_id(
        client, name="Niet bestuur", filter=cond("memberOf", "NEQ", board)
    )
    assert await member_names(client, outsiders) == ["Molenaar", "Åberg", None]
    either = await new_group_id(
        client, name="Een van beide", filter=cond("memberOf", "IN", values=[board, outsiders])
    )
    assert len(await member_names(client, either)) == 5

    data = await client.data(
        f"query($id: ID!) {{ group(id: $id) {{ {FILTER_FIELDS} usedBy {{ name }} }} }}",
        {"id": group},
    )
    assert data["group"]["filter"]["all"][0]["condition"]["value"] == union
    used = await client.data(GROUP_USED_BY, {"id": union})
    assert used["group"]["usedBy"] == [{"name": "Bestuur met e-mail"}]

    path = await client.data(MEMBERSHIP_PATH, {"id": group, "contactId": contacts[0]})
    assert path["group"]["membershipPath"] == [{"name": "Bestuur met e-mail"}]

    errors = await refused(
        app, client, UPDATE_GROUP, {"id": union, "input": {"composedOfIds": [board, group]}}
    )
    assert errors[0]["code"] == "CYCLE"
    assert (
        "Bestuur samengesteld -> Bestuur met e-mail -> Bestuur samengesteld" in errors[0]["message"]
    )
    errors = await refused(
        app,
        client,
        UPDATE_GROUP,
        {"id": group, "input": {"filter": cond("memberOf", "EQ", group)}},
    )
    assert errors[0]["code"] == "CYCLE"


@pytest.mark.parametrize(
    ("tree", "field", "code"),
    [
        (cond("shoeSize", "EQ", "42"), ["input", "filter", "condition", "field"], "INVALID"),
        (cond("createdAt", "CONTAINS", "2024"), ["input", "filter", "condition", "op"], "INVALID"),
        (cond("createdAt", "GT", "gisteren"), ["input", "filter", "condition", "value"], "INVALID"),
        (cond("kind", "EQ", "ROBOT"), ["input", "filter", "condition", "value"], "INVALID"),
        (cond("kind", "STARTS_WITH", "P"), ["input", "filter", "condition", "op"], "INVALID"),
        (
            cond("city", "IN", value="Zwolle"),
            ["input", "filter", "condition", "values"],
            "REQUIRED",
        ),
        (cond("city", "IN", values=[]), ["input", "filter", "condition", "values"], "REQUIRED"),
        (cond("city", "EQ"), ["input", "filter", "condition", "value"], "REQUIRED"),
        (cond("city", "IS_EMPTY", "x"), ["input", "filter", "condition"], "INVALID"),
        (cond("city", "EQ", "x" * 501), ["input", "filter", "condition", "value"], "TOO_LONG"),
        ({}, ["input", "filter"], "INVALID"),
        (
            {"all": [cond("city", "EQ", "a")], "any": [cond("city", "EQ", "b")]},
            ["input", "filter"],
            "INVALID",
        ),
        ({"all": []}, ["input", "filter", "all"], "REQUIRED"),
        ({"all": [{"not": {}}]}, ["input", "filter", "all", "0", "not"], "INVALID"),
        (cond("memberOf", "EQ", "R3JvdXA6OTk5OQ=="), ["input", "filter"], "NOT_FOUND"),
        (
            cond("memberOf", "EQ", "Q29udGFjdDox"),
            ["input", "filter", "condition", "value"],
            "INVALID_ID",
        ),
    ],
)
async def test_bad_filters_are_refused_and_change_nothing(
    app: Any, client: GraphQLClient, tree: dict, field: list[str], code: str
):
    errors = await refused(
        app, client, CREATE_GROUP, {"input": {"name": "Dynamisch", "filter": tree}}
    )
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in errors
    ], errors
    body = await client.execute(
        "query($f: ContactFilterInput) { contacts(filter: $f) { totalCount } }", {"f": tree}
    )
    assert body["errors"][0]["extensions"]["code"] in {"BAD_USER_INPUT", "INVALID_ID"}


async def test_too_deep_filters_are_refused_and_change_nothing(app: Any, client: GraphQLClient):
    tree: dict = cond("city", "EQ", "Zwolle")
    for _ in range(25):
        tree = {"not": tree}
    errors = await refused(app, client, CREATE_GROUP, {"input": {"name": "Diep", "filter": tree}})
    assert errors[0]["code"] == "TOO_LONG"


async def test_filter_fields_tell_a_filter_editor_what_to_offer(client: GraphQLClient):
    query = '{ filterFields { name label en: label(locale: "en") type operators choices } }'
    fields = {f.pop("name"): f for f in (await client.data(query))["filterFields"]}
    assert list(fields)[:3] == ["kind", "firstName", "lastName"], "the core's, in their order"
    assert fields["postalCode"] == {
        "label": "Postcode",
        "en": "Postal code",
        "type": "TEXT",
        "operators": [op.value for op in FilterOp],
        "choices": [],
    }
    assert fields["kind"]["choices"] == ["PERSON", "ORGANISATION"]
    assert fields["kind"]["operators"] == ["EQ", "NEQ", "IN"]
    assert fields["createdAt"]["operators"] == ["EQ", "NEQ", "LT", "LTE", "GT", "GTE"]
    assert (fields["memberOf"]["type"], fields["memberOf"]["en"]) == ("GROUP", "Member of group")
    role = fields["neighbourhoodRole"]
    assert (role["type"], role["label"]) == ("CHOICE", "Rol in buurtaanpak"), "the roles' field"
    assert {"coach", "projectleider", "external_party"} <= set(role["choices"])
    for name, offered in fields.items():
        condition = {"field": name, "op": offered["operators"][0], "value": "x"}
        body = await client.execute(
            "query($f: ContactFilterInput!) { contacts(filter: $f) { totalCount } }",
            {"f": {"condition": condition}},
        )
        assert "Unknown field" not in str(body), name
