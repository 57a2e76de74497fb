"""Composite groups ("Samengesteld uit"): union, intersection, exclusion, nesting, cycles."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api.kernel.access import SYSTEM
from graphql_api.testing import (
    ADD_MEMBERS,
    CREATE_GROUP,
    DELETE_GROUP,
    GROUP_USED_BY,
    MEMBERSHIP_PATH,
    REMOVE_MEMBERS,
    UPDATE_GROUP,
    GraphQLClient,
    add_members,
    member_names,
    new_contact_ids,
    new_group,
    new_group_id,
    new_static_group_id,
    refused,
    remove_members,
)

COMPOSITION = """query($id: ID!) { group(id: $id) {
  compositionMode composedOf { name } excludedGroups { name } } }"""


@pytest.fixture
async def people(client: GraphQLClient) -> dict[str, str]:
    names = ["Aa", "Bb", "Cc", "Dd", "Ee"]
    return dict(zip(names, await new_contact_ids(client, *names), strict=True))


async def test_union_intersection_and_exclusion(client: GraphQLClient, people: dict[str, str]):
    a = await new_static_group_id(client, "A", [people["Aa"], people["Bb"], people["Cc"]])
    b = await new_static_group_id(client, "B", [people["Bb"], people["Cc"], people["Dd"]])
    c = await new_static_group_id(client, "C", [people["Cc"]])

    union = await new_group(client, name="A of B", composedOfIds=[b, a])
    assert union["kind"] == "COMPOSITE"
    assert await member_names(client, union["id"]) == ["Aa", "Bb", "Cc", "Dd"]
    data = await client.data(COMPOSITION, {"id": union["id"]})
    assert [g["name"] for g in data["group"]["composedOf"]] == ["B", "A"]
    assert data["group"]["compositionMode"] == "ANY"

    both = await new_group_id(client, name="A en B", composedOfIds=[a, b], compositionMode="ALL")
    assert await member_names(client, both) == ["Bb", "Cc"]

    minus = await new_group_id(
        client, name="A of B zonder C", composedOfIds=[a, b], excludedGroupIds=[c]
    )
    assert await member_names(client, minus) == ["Aa", "Bb", "Dd"]
    data = await client.data(COMPOSITION, {"id": minus})
    assert [g["name"] for g in data["group"]["excludedGroups"]] == ["C"]


HAS_MEMBER = """query($id: ID!, $aa: ID!, $bb: ID!, $cc: ID!, $dd: ID!, $ee: ID!) {
  group(id: $id) { Aa: hasMember(contactId: $aa) Bb: hasMember(contactId: $bb)
    Cc: hasMember(contactId: $cc) Dd: hasMember(contactId: $dd) Ee: hasMember(contactId: $ee) } }"""


@pytest.mark.parametrize(
    ("included", "excluded", "expected"),
    [
        ([["Aa", "Bb", "Cc", "Dd", "Ee"]], [["Aa"], ["Bb", "Cc"]], ["Dd", "Ee"]),
        ([["Aa", "Bb", "Cc"], ["Cc", "Dd", "Ee"]], [["Bb"], ["Aa", "Dd"], ["Cc"]], ["Ee"]),
    ],
    ids=["two excluded", "three excluded"],
)
async def test_every_excluded_group_is_subtracted(
    client: GraphQLClient,
    people: dict[str, str],
    included: list[list[str]],
    excluded: list[list[str]],
    expected: list[str],
):
    """Each excluded group takes out someone no other excluded group does."""

    async def statics(prefix: str, member_lists: list[list[str]]) -> list[str]:
        return [
            await new_static_group_id(client, f"{prefix}{i}", [people[n] for n in names])
            for i, names in enumerate(member_lists)
        ]

    minus = await new_group_id(
        client,
        name="Min",
        composedOfIds=await statics("In", included),
        excludedGroupIds=await statics("Uit", excluded),
    )
    assert await member_names(client, minus) == expected
    has = await client.data(HAS_MEMBER, {"id": minus} | {n.lower(): i for n, i in people.items()})
    assert has["group"] == {name: name in expected for name in people}


async def test_nesting_and_diamonds(client: GraphQLClient, people: dict[str, str]):
    a = await new_static_group_id(client, "A", [people["Aa"], people["Bb"]])
    b = await new_static_group_id(client, "B", [people["Bb"], people["Cc"]])
    left = await new_group_id(client, name="Links", composedOfIds=[a])
    right = await new_group_id(client, name="Rechts", composedOfIds=[a, b], compositionMode="ALL")
    top = await new_group_id(client, name="Top", composedOfIds=[left, right], compositionMode="ALL")
    deeper = await new_group_id(
        client, name="Dieper", composedOfIds=[top, b], excludedGroupIds=[left]
    )
    assert await member_names(client, top) == ["Bb"]
    assert await member_names(client, deeper) == ["Cc"]


async def test_membership_is_live(client: GraphQLClient, people: dict[str, str]):
    a = await new_static_group_id(client, "A", [people["Aa"]])
    b = await new_static_group_id(client, "B", [])
    union = await new_group_id(client, name="Samen", composedOfIds=[a, b], excludedGroupIds=[])
    outer = await new_group_id(client, name="Buiten", composedOfIds=[union])
    assert await member_names(client, outer) == ["Aa"]
    await add_members(client, b, [people["Ee"], people["Cc"]])
    assert await member_names(client, outer) == ["Aa", "Cc", "Ee"]
    await remove_members(client, a, [people["Aa"]])
    assert await member_names(client, outer) == ["Cc", "Ee"]
    await client.data(
        UPDATE_GROUP, {"id": union, "input": {"excludedGroupIds": [a], "composedOfIds": [b]}}
    )
    assert await member_names(client, outer) == ["Cc", "Ee"]
    await client.data(
        UPDATE_GROUP,
        {
            "id": union,
            "input": {"compositionMode": "ALL", "composedOfIds": [a, b], "excludedGroupIds": []},
        },
    )
    assert await member_names(client, outer) == []


async def test_contact_side_sees_derived_groups(client: GraphQLClient, people: dict[str, str]):
    a = await new_static_group_id(client, "A", [people["Aa"], people["Bb"]])
    shown = await new_group_id(
        client, name="Zichtbaar samengesteld", composedOfIds=[a], showOnContact=True
    )
    await new_group_id(
        client,
        name="Verborgen samengesteld",
        composedOfIds=[a],
        excludedGroupIds=[await new_static_group_id(client, "X", [people["Bb"]])],
    )
    query = """query($id: ID!) { contact(id: $id) { groups { name kind }
        visibleGroups { derived { name } static { group { name } } } } }"""
    aa = (await client.data(query, {"id": people["Aa"]}))["contact"]
    assert [g["name"] for g in aa["groups"]] == [
        "A",
        "Verborgen samengesteld",
        "Zichtbaar samengesteld",
    ]
    assert aa["visibleGroups"] == {"derived": [{"name": "Zichtbaar samengesteld"}], "static": []}
    bb = (await client.data(query, {"id": people["Bb"]}))["contact"]
    assert [g["name"] for g in bb["groups"]] == ["A", "X", "Zichtbaar samengesteld"]

    listed = await client.data(
        "query($c: ID!) { groups(filter: {hasMemberId: $c, kind: COMPOSITE}) { edges { node { name } } } }",
        {"c": people["Aa"]},
    )
    assert [e["node"]["name"] for e in listed["groups"]["edges"]] == [
        "Verborgen samengesteld",
        "Zichtbaar samengesteld",
    ]
    has = await client.data(
        "query($g: ID!, $a: ID!, $c: ID!) { group(id: $g) { a: hasMember(contactId: $a) c: hasMember(contactId: $c) } }",
        {"g": shown, "a": people["Aa"], "c": people["Cc"]},
    )
    assert has["group"] == {"a": True, "c": False}


async def test_membership_path_explains(client: GraphQLClient, people: dict[str, str]):
    a = await new_static_group_id(client, "A", [people["Aa"]])
    b = await new_static_group_id(client, "B", [people["Bb"]])
    middle = await new_group_id(client, name="Midden", composedOfIds=[a, b])
    top = await new_group_id(client, name="Top", composedOfIds=[middle])
    data = await client.data(MEMBERSHIP_PATH, {"id": top, "contactId": people["Bb"]})
    assert [g["name"] for g in data["group"]["membershipPath"]] == ["Top", "Midden", "B"]
    data = await client.data(MEMBERSHIP_PATH, {"id": top, "contactId": people["Cc"]})
    assert data["group"]["membershipPath"] is None
    data = await client.data(MEMBERSHIP_PATH, {"id": a, "contactId": people["Aa"]})
    assert [g["name"] for g in data["group"]["membershipPath"]] == ["A"]


async def cycle(app: Any, client: GraphQLClient, group_id: str, **changes: Any) -> dict:
    """Send an ``updateGroup`` that must be refused with one CYCLE error and change nothing;
    that error."""
    [error] = await refused(app, client, UPDATE_GROUP, {"id": group_id, "input": changes})
    assert error["code"] == "CYCLE", error
    return error


async def test_cycles_are_refused_with_their_path_and_change_nothing(
    app: Any, client: GraphQLClient
):
    a = await new_static_group_id(client, "A", [])
    b = await new_static_group_id(client, "B", [])
    union = await new_group_id(client, name="A of B", composedOfIds=[a, b])
    nested = await new_group_id(client, name="Genest", composedOfIds=[union])

    error = await cycle(app, client, union, composedOfIds=[a, nested])
    assert error["field"] == ["input", "composedOfIds"]
    assert error["message"] == "This would make a group contain itself: A of B -> Genest -> A of B."
    error = await cycle(app, client, union, composedOfIds=[union])
    assert error["message"] == "This would make a group contain itself: A of B -> A of B."
    error = await cycle(app, client, union, excludedGroupIds=[nested])
    assert error["field"] == ["input", "excludedGroupIds"]


async def test_a_cycle_closed_through_an_exclusion_is_refused(app: Any, client: GraphQLClient):
    base = await new_static_group_id(client, "Basis", [])
    # B includes A, then A would exclude B: the new exclusion closes the cycle.
    a = await new_group_id(client, name="A", composedOfIds=[base])
    b = await new_group_id(client, name="B", composedOfIds=[a])
    error = await cycle(app, client, a, excludedGroupIds=[b])
    assert error["field"] == ["input", "excludedGroupIds"]
    assert error["message"].endswith(": A -> B -> A.")
    # D excludes C, then C would include D: the cycle runs through the existing exclusion.
    c = await new_group_id(client, name="C", composedOfIds=[base])
    d = await new_group_id(client, name="D", composedOfIds=[base], excludedGroupIds=[c])
    error = await cycle(app, client, c, composedOfIds=[base, d])
    assert error["field"] == ["input", "composedOfIds"]
    assert error["message"].endswith(": C -> D -> C.")


def member_of(group_id: str, op: str = "EQ") -> dict[str, Any]:
    """A dynamic filter on membership of a group."""
    return {"condition": {"field": "memberOf", "op": op, "value": group_id}}


async def test_a_cycle_closed_through_an_exclusion_and_a_member_of_filter_is_refused(
    app: Any, client: GraphQLClient
):
    base = await new_static_group_id(client, "Basis", [])
    # E filters on membership of F, then F would exclude E.
    f = await new_group_id(client, name="F", composedOfIds=[base])
    e = await new_group_id(client, name="E", filter=member_of(f))
    error = await cycle(app, client, f, excludedGroupIds=[e])
    assert error["field"] == ["input", "excludedGroupIds"]
    assert error["message"].endswith(": F -> E -> F.")
    # H excludes G, then G would filter on membership of H.
    g = await new_group_id(client, name="G", filter=member_of(base))
    h = await new_group_id(client, name="H", composedOfIds=[base], excludedGroupIds=[g])
    error = await cycle(app, client, g, filter=member_of(h, "NEQ"))
    assert error["field"] == ["input", "filter"]
    assert error["message"].endswith(": G -> H -> G.")


@pytest.mark.parametrize(
    ("build", "field", "code"),
    [
        (lambda a, b: {"composedOfIds": [a, a]}, ["input", "composedOfIds", "1"], "DUPLICATE"),
        (
            lambda a, b: {"composedOfIds": [a, b], "excludedGroupIds": [b]},
            ["input", "excludedGroupIds", "0"],
            "DUPLICATE",
        ),
        (lambda a, b: {"excludedGroupIds": [b]}, ["input", "excludedGroupIds"], "REQUIRED"),
        (
            lambda a, b: {"composedOfIds": [a, "R3JvdXA6OTk5OQ=="]},
            ["input", "composedOfIds", "1"],
            "NOT_FOUND",
        ),
        (lambda a, b: {"composedOfIds": [a, "bad"]}, ["input", "composedOfIds", "1"], "INVALID_ID"),
        (
            lambda a, b: {
                "composedOfIds": [a],
                "filter": {"condition": {"field": "city", "op": "EQ", "value": "Zwolle"}},
            },
            ["input", "filter"],
            "KIND_CONFLICT",
        ),
        (
            lambda a, b: {"composedOfIds": [a], "compositionMode": None},
            ["input", "compositionMode"],
            "REQUIRED",
        ),
    ],
)
async def test_bad_compositions_are_refused_and_change_nothing(
    app: Any, client: GraphQLClient, build: Any, field: list[str], code: str
):
    a = await new_static_group_id(client, "A", [])
    b = await new_static_group_id(client, "B", [])
    errors = await refused(app, client, CREATE_GROUP, {"input": {"name": "Nieuw", **build(a, b)}})
    assert {"field": field, "code": code} in [
        {"field": e["field"], "code": e["code"]} for e in errors
    ]


async def test_a_static_group_with_members_is_refused_as_composite_and_changes_nothing(
    app: Any, client: GraphQLClient, people: dict[str, str]
):
    a = await new_static_group_id(client, "A", [people["Aa"]])
    b = await new_static_group_id(client, "B", [])
    errors = await refused(app, client, UPDATE_GROUP, {"id": a, "input": {"composedOfIds": [b]}})
    assert errors[0]["code"] == "HAS_MEMBERS"
    data = await client.data(UPDATE_GROUP, {"id": b, "input": {"composedOfIds": [a]}})
    assert data["updateGroup"]["group"]["kind"] == "COMPOSITE"


async def test_editing_members_of_a_derived_group_is_refused_and_changes_nothing(
    app: Any, client: GraphQLClient, people: dict[str, str]
):
    a = await new_static_group_id(client, "A", [people["Bb"]])
    union = await new_group_id(client, name="Samen", composedOfIds=[a])
    for mutation, contact in ((ADD_MEMBERS, "Aa"), (REMOVE_MEMBERS, "Bb")):
        variables = {"groupId": union, "contactIds": [people[contact]]}
        [error] = await refused(app, client, mutation, variables)
        assert (error["field"], error["code"]) == (["groupId"], "NOT_STATIC")


async def test_deleting_a_group_in_use_is_refused_and_changes_nothing(
    app: Any, client: GraphQLClient
):
    a = await new_static_group_id(client, "A", [])
    b = await new_static_group_id(client, "B", [])
    await new_group_id(client, name="Eerste", composedOfIds=[a])
    await new_group_id(client, name="Tweede", composedOfIds=[b], excludedGroupIds=[a])
    errors = await refused(app, client, DELETE_GROUP, {"id": a})
    assert errors[0]["code"] == "GROUP_IN_USE"
    assert "'Eerste'" in errors[0]["message"] and "'Tweede'" in errors[0]["message"]
    used = await client.data(GROUP_USED_BY, {"id": a})
    assert [g["name"] for g in used["group"]["usedBy"]] == ["Eerste", "Tweede"]


async def test_convert_to_static_freezes_members(
    app: Any, client: GraphQLClient, people: dict[str, str]
):
    a = await new_static_group_id(client, "A", [people["Aa"], people["Bb"]])
    union = await new_group_id(client, name="Samen", composedOfIds=[a])
    convert = """mutation($id: ID!) { convertToStatic(groupId: $id) {
        group { kind composedOf { name } memberCount } errors { code } } }"""
    data = await client.data(convert, {"id": union})
    assert data["convertToStatic"] == {
        "group": {"kind": "STATIC", "composedOf": [], "memberCount": 2},
        "errors": [],
    }
    await remove_members(client, a, [people["Aa"]])
    assert await member_names(client, union) == ["Aa", "Bb"]
    history = await client.data(
        "query($id: ID!) { group(id: $id) { history { edges { node { action source } } } } }",
        {"id": union},
    )
    assert [e["node"] for e in history["group"]["history"]["edges"]] == [
        {"action": "ADDED", "source": "CONVERSION"}
    ] * 2 + [{"action": "ADDED", "source": "DERIVED"}] * 2, "newest first"
    contact = await client.data(
        "query($id: ID!) { contact(id: $id) { memberships { group { name } source } } }",
        {"id": people["Bb"]},
    )
    assert {"group": {"name": "Samen"}, "source": "CONVERSION"} in contact["contact"]["memberships"]

    assert await refused(app, client, convert, {"id": union}) == [{"code": "ALREADY_STATIC"}]
    assert await refused(app, client, convert, {"id": "R3JvdXA6OTk5"}) == [{"code": "NOT_FOUND"}]


async def test_more_derived_groups_than_sqlite_combines_in_one_select(
    app: Any, client: GraphQLClient, people: dict[str, str]
):
    """SQLite allows 500 terms in a compound SELECT; a contact may be in more groups."""
    from graphql_api.graphql_base.relay import parse_global_id
    from graphql_api.groups.lifecycle import create_group as create_in_service
    from graphql_api.kernel.db import create_sessionmaker

    base = await new_static_group_id(client, "Basis", [people["Aa"]])
    base_id = parse_global_id(base)[1]
    async with create_sessionmaker(app.state.engine)() as session, session.begin():
        for i in range(450):
            await create_in_service(
                session, SYSTEM, {"name": f"S{i:03d}", "composed_of_ids": [base_id]}
            )
    data = await client.data(
        "query($c: ID!) { contact(id: $c) { groups { name } } groups(first: 100, filter: {kind: COMPOSITE}) { totalCount edges { node { memberCount } } } }",
        {"c": people["Aa"]},
    )
    assert len(data["contact"]["groups"]) == 451
    assert data["groups"]["totalCount"] == 450
    assert {e["node"]["memberCount"] for e in data["groups"]["edges"]} == {1}
