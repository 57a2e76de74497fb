"""The coach plugin, tested with graphql-api's testing kit as any third party would."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api.testing import (
    DELETE_GROUP,
    GraphQLClient,
    add_members,
    check_role_plugin,
    new_contact_ids,
    new_group_id,
    refused,
    remove_members,
)

LINK = """mutation($c: ID!, $a: String!) { linkHoomdossier(contactId: $c, accountId: $a) {
  contact { hoomdossierAccountId isCoach } errors { field code message } } }"""
UNLINK = """mutation($c: ID!) { unlinkHoomdossier(contactId: $c) { contact { hoomdossierAccountId } errors { code } } }"""


@pytest.fixture
async def coach_group(client: GraphQLClient) -> str:
    return await new_group_id(client, name="Energiecoaches", neighbourhoodRole="coach")


async def test_the_role_is_registered_with_labels(client: GraphQLClient):
    data = await client.data('{ roles { key nl: label en: label(locale: "en") description } }')
    coach = next(role for role in data["roles"] if role["key"] == "coach")
    assert coach["nl"] == "Is coach" and coach["en"] == "Is coach" and coach["description"]
    plugins = await client.data("{ plugins { name version hooks error } }")
    entry = next(p for p in plugins["plugins"] if p["name"] == "coach")
    assert entry["error"] is None and entry["version"] == "0.1.0"
    assert {"register_roles", "migrations", "apply_change"} <= set(entry["hooks"])


async def test_coaches_are_listed_and_flagged(client: GraphQLClient, coach_group: str):
    anna, bram = await new_contact_ids(client, "Anna", "Bram")
    await add_members(client, coach_group, [anna])
    data = await client.data(
        """query($a: ID!, $b: ID!) { coaches(first: 10) { totalCount nodes { lastName } }
             a: contact(id: $a) { isCoach neighbourhoodRoles { key } }
             b: contact(id: $b) { isCoach neighbourhoodRoles { key } } }""",
        {"a": anna, "b": bram},
    )
    assert data["coaches"] == {"totalCount": 1, "nodes": [{"lastName": "Anna"}]}
    assert data["a"] == {"isCoach": True, "neighbourhoodRoles": [{"key": "coach"}]}
    assert data["b"] == {"isCoach": False, "neighbourhoodRoles": []}


async def test_only_a_coach_can_be_linked(app: Any, client: GraphQLClient, coach_group: str):
    anna, bram = await new_contact_ids(client, "Anna", "Bram")
    await add_members(client, coach_group, [anna])
    [error] = await refused(app, client, LINK, {"c": bram, "a": "HD-1"})
    assert (error["field"], error["code"]) == (["contactId"], "INVALID")

    data = await client.data(LINK, {"c": anna, "a": "HD-1"})
    assert data["linkHoomdossier"] == {
        "contact": {"hoomdossierAccountId": "HD-1", "isCoach": True},
        "errors": [],
    }


@pytest.mark.parametrize(
    ("contact", "account", "field", "code"),
    [
        ("Q29udGFjdDo5OTk5", "HD-1", ["contactId"], "NOT_FOUND"),
        ("nonsense", "HD-1", ["contactId"], "INVALID_ID"),
        (None, "", ["accountId"], "REQUIRED"),
        (None, "x" * 101, ["accountId"], "TOO_LONG"),
        (None, "HD-TAKEN", ["accountId"], "DUPLICATE"),
    ],
)
async def test_bad_links_are_refused_and_change_nothing(
    app: Any,
    client: GraphQLClient,
    coach_group: str,
    contact: str | None,
    account: str,
    field: list,
    code: str,
):
    anna, bram = await new_contact_ids(client, "Anna", "Bram")
    await add_members(client, coach_group, [anna, bram])
    await client.data(LINK, {"c": bram, "a": "HD-TAKEN"})
    [error] = await refused(app, client, LINK, {"c": contact or anna, "a": account})
    assert (error["field"], error["code"]) == (field, code)


async def test_who_stops_being_a_coach_keeps_no_link(client: GraphQLClient, coach_group: str):
    other_coaches = await new_group_id(client, name="Coaches Noord", neighbourhoodRole="coach")
    anna, bram = await new_contact_ids(client, "Anna", "Bram")
    await add_members(client, coach_group, [anna, bram])
    await add_members(client, other_coaches, [bram])
    for contact, account in ((anna, "HD-A"), (bram, "HD-B")):
        await client.data(LINK, {"c": contact, "a": account})

    await remove_members(client, coach_group, [anna, bram])
    query = "query($a: ID!, $b: ID!) { a: contact(id: $a) { hoomdossierAccountId } b: contact(id: $b) { hoomdossierAccountId } }"
    data = await client.data(query, {"a": anna, "b": bram})
    assert data == {"a": {"hoomdossierAccountId": None}, "b": {"hoomdossierAccountId": "HD-B"}}

    await client.data(DELETE_GROUP, {"id": other_coaches})
    data = await client.data(query, {"a": anna, "b": bram})
    assert data["b"]["hoomdossierAccountId"] is None


async def test_unlink_removes_the_link_and_unlinking_again_is_refused(
    app: Any, client: GraphQLClient, coach_group: str
):
    [anna] = await new_contact_ids(client, "Anna")
    await add_members(client, coach_group, [anna])
    await client.data(LINK, {"c": anna, "a": "HD-A"})
    data = await client.data(UNLINK, {"c": anna})
    assert data["unlinkHoomdossier"] == {"contact": {"hoomdossierAccountId": None}, "errors": []}
    assert await refused(app, client, UNLINK, {"c": anna}) == [{"code": "NOT_FOUND"}]


async def test_the_role_kit_promises_hold(client: GraphQLClient):
    await check_role_plugin(client, "coach", "Is coach", "coaches", "isCoach")
