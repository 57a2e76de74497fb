"""Static memberships: adding, removing, history, and how contacts see their groups."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api.testing import (
    ADD_MEMBERS,
    DELETE_GROUP,
    REMOVE_MEMBERS,
    GraphQLClient,
    add_members,
    new_contact_ids,
    new_group_id,
    refused,
    unchanged,
)

STATE = """
query($id: ID!) {
  group(id: $id) {
    memberCount
    members(first: 100) { totalCount nodes { displayName } }
    history(first: 100) { totalCount edges { node { action source contact { displayName } actor { name } } } }
  }
}"""


async def state(client: GraphQLClient, group_id: str) -> dict[str, Any]:
    return (await client.data(STATE, {"id": group_id}))["group"]


async def test_add_members_records_who_when_and_how(client: GraphQLClient):
    group_id = await new_group_id(client, name="Nieuwsbrief")
    jansen, bakker = await new_contact_ids(client, "Jansen", "Bakker", firstName="Jan")

    data = await client.data(ADD_MEMBERS, {"groupId": group_id, "contactIds": [jansen]})
    payload = data["addGroupMembers"]
    assert payload["errors"] == []
    assert payload["changedCount"] == 1
    assert payload["group"]["memberCount"] == 1
    [link] = payload["memberships"]
    assert link["source"] == "MANUAL"
    assert link["contact"]["displayName"] == "Jan Jansen"
    assert link["addedBy"]["name"] == "Johannes Frölich"
    assert link["group"]["name"] == "Nieuwsbrief"

    data = await client.data(ADD_MEMBERS, {"groupId": group_id, "contactIds": [jansen, bakker]})
    payload = data["addGroupMembers"]
    assert payload["changedCount"] == 1, "an existing member is not added twice"
    assert [m["contact"]["displayName"] for m in payload["memberships"]] == ["Jan Bakker"]
    assert payload["memberships"][0]["source"] == "BULK"

    current = await state(client, group_id)
    assert current["memberCount"] == 2
    assert current["members"]["totalCount"] == 2
    assert [e["node"]["action"] for e in current["history"]["edges"]] == ["ADDED", "ADDED"]


async def test_readding_an_existing_member_changes_nothing(app: Any, client: GraphQLClient):
    group_id = await new_group_id(client, name="Nieuwsbrief")
    [jansen] = await new_contact_ids(client, "Jansen", firstName="Jan")
    await add_members(client, group_id, [jansen])

    async with unchanged(app):
        again = await add_members(client, group_id, [jansen, jansen])
    assert again["changedCount"] == 0
    assert again["memberships"] == []


async def test_remove_keeps_history(client: GraphQLClient):
    group_id = await new_group_id(client, name="Nieuwsbrief")
    jansen, bakker = await new_contact_ids(client, "Jansen", "Bakker", firstName="Jan")
    await add_members(client, group_id, [jansen, bakker])

    data = await client.data(REMOVE_MEMBERS, {"groupId": group_id, "contactIds": [jansen]})
    assert data["removeGroupMembers"] == {
        "group": {"memberCount": 1},
        "changedCount": 1,
        "errors": [],
    }
    data = await client.data(REMOVE_MEMBERS, {"groupId": group_id, "contactIds": [jansen]})
    assert data["removeGroupMembers"]["changedCount"] == 0

    current = await state(client, group_id)
    assert [n["displayName"] for n in current["members"]["nodes"]] == ["Jan Bakker"]
    history = [
        (e["node"]["action"], e["node"]["contact"]["displayName"], e["node"]["actor"]["name"])
        for e in current["history"]["edges"]
    ]
    assert history[0] == ("REMOVED", "Jan Jansen", "Johannes Frölich")
    assert sorted(history[1:]) == [
        ("ADDED", "Jan Bakker", "Johannes Frölich"),
        ("ADDED", "Jan Jansen", "Johannes Frölich"),
    ]


@pytest.mark.parametrize("mutation", [ADD_MEMBERS, REMOVE_MEMBERS])
async def test_unknown_or_malformed_contacts_refuse_the_whole_call_and_change_nothing(
    app: Any, client: GraphQLClient, mutation: str
):
    group_id = await new_group_id(client, name="Nieuwsbrief")
    jansen, bakker = await new_contact_ids(client, "Jansen", "Bakker", firstName="Jan")
    await add_members(client, group_id, [bakker])
    unknown = "Q29udGFjdDo5OTk5OQ=="  # Contact:99999

    async with unchanged(app):
        data = await client.data(
            mutation, {"groupId": group_id, "contactIds": [jansen, unknown, bakker]}
        )
    payload = next(iter(data.values()))
    assert payload["errors"] == [
        {"field": ["contactIds", "1"], "code": "NOT_FOUND", "message": "No contact with this id."}
    ]
    assert payload["group"] is None

    errors = await refused(
        app, client, mutation, {"groupId": group_id, "contactIds": [jansen, group_id]}
    )
    assert (errors[0]["field"], errors[0]["code"]) == (["contactIds", "1"], "INVALID_ID")
    errors = await refused(app, client, mutation, {"groupId": group_id, "contactIds": []})
    assert errors[0]["code"] == "REQUIRED"


@pytest.mark.parametrize("mutation", [ADD_MEMBERS, REMOVE_MEMBERS])
async def test_an_unknown_group_is_refused_and_changes_nothing(
    app: Any, client: GraphQLClient, mutation: str
):
    [jansen] = await new_contact_ids(client, "Jansen", firstName="Jan")
    errors = await refused(
        app, client, mutation, {"groupId": "R3JvdXA6OTk5", "contactIds": [jansen]}
    )
    assert errors == [
        {"field": ["groupId"], "code": "NOT_FOUND", "message": "No group with this id."}
    ]
    errors = await refused(app, client, mutation, {"groupId": jansen, "contactIds": [jansen]})
    assert errors[0]["code"] == "INVALID_ID"


async def test_too_many_ids_in_one_call_are_refused_and_change_nothing(
    app: Any, client: GraphQLClient
):
    group_id = await new_group_id(client, name="Groot")
    ids = ["Q29udGFjdDox"] * 10_001
    errors = await refused(app, client, ADD_MEMBERS, {"groupId": group_id, "contactIds": ids})
    assert errors[0]["code"] == "TOO_MANY"


async def test_contact_sees_its_groups(client: GraphQLClient):
    visible = await new_group_id(client, name="Zichtbaar", showOnContact=True)
    hidden = await new_group_id(client, name="Verborgen")
    jansen, bakker = await new_contact_ids(client, "Jansen", "Bakker", firstName="Jan")
    for group_id in (visible, hidden):
        await add_members(client, group_id, [jansen])

    data = await client.data(
        """query($id: ID!) { contact(id: $id) {
             groups { name }
             memberships { group { name } source memberSince addedBy { name } contact { displayName } }
             visibleGroups { static { group { name } memberSince } }
           } }""",
        {"id": jansen},
    )
    contact = data["contact"]
    assert [g["name"] for g in contact["groups"]] == ["Verborgen", "Zichtbaar"]
    assert [m["group"]["name"] for m in contact["memberships"]] == ["Zichtbaar", "Verborgen"]
    assert [m["group"]["name"] for m in contact["visibleGroups"]["static"]] == ["Zichtbaar"]

    membership_query = """query($g: ID!, $c: ID!, $f: GroupFilter) {
        group(id: $g) { hasMember(contactId: $c) }
        groups(filter: $f) { edges { node { name } } } }"""
    data = await client.data(
        membership_query, {"g": visible, "c": jansen, "f": {"hasMemberId": jansen}}
    )
    assert data["group"]["hasMember"] is True
    assert [e["node"]["name"] for e in data["groups"]["edges"]] == ["Verborgen", "Zichtbaar"]
    data = await client.data(
        membership_query, {"g": visible, "c": bakker, "f": {"hasMemberId": bakker}}
    )
    assert data["group"]["hasMember"] is False
    assert data["groups"]["edges"] == []


async def test_deleting_a_group_removes_its_links(client: GraphQLClient):
    group_id = await new_group_id(client, name="Tijdelijk")
    [jansen] = await new_contact_ids(client, "Jansen", firstName="Jan")
    await add_members(client, group_id, [jansen])
    await client.data(DELETE_GROUP, {"id": group_id})
    data = await client.data(
        "query($id: ID!) { contact(id: $id) { groups { name } memberships { source } } }",
        {"id": jansen},
    )
    assert data["contact"] == {"groups": [], "memberships": []}


async def test_members_search_and_paging(client: GraphQLClient):
    group_id = await new_group_id(client, name="Groot")
    ids = await new_contact_ids(client, *[f"Naam{i:02d}" for i in range(12)], firstName="Jan")
    await add_members(client, group_id, ids)
    query = """query($id: ID!, $after: String, $search: String) { group(id: $id) {
        members(first: 5, after: $after, search: $search) {
          totalCount nodes { lastName } pageInfo { hasNextPage endCursor } } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = (await client.data(query, {"id": group_id, "after": after}))["group"]["members"]
        seen += [n["lastName"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"Naam{i:02d}" for i in range(12)]
    found = (await client.data(query, {"id": group_id, "search": "naam1"}))["group"]["members"]
    assert found["totalCount"] == 2
    assert [n["lastName"] for n in found["nodes"]] == ["Naam10", "Naam11"]
