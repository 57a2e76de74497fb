"""No poison: every value a dynamic group's filter can hold is validated against what both
databases store and compare, so a stored filter cannot fail on later reads and writes; and
one that fails all the same (written past validation) breaks only its own group's fields,
never another group, a contact's screen or a write."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import JSON, bindparam, text

from graphql_api.groups.derived import differences
from graphql_api.groups.filters import validate_filter
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.testing import (
    CREATE_CONTACT,
    CREATE_GROUP,
    MEMBERSHIP_PATH,
    UPDATE_CONTACT,
    UPDATE_GROUP,
    GraphQLClient,
    member_names,
    new_contact_id,
    new_group_id,
    refused,
)

DATE_OPS = ["EQ", "NEQ", "LT", "LTE", "GT", "GTE"]


def created(op: str, value: str) -> dict[str, Any]:
    return {"condition": {"field": "createdAt", "op": op, "value": value}}


@pytest.mark.parametrize("op", DATE_OPS)
@pytest.mark.parametrize("value", ["9999-12-31", "0000-01-01", "20240101"])
async def test_a_date_outside_what_both_databases_handle_is_refused(
    app: Any, client: GraphQLClient, op: str, value: str
):
    errors = await refused(
        app, client, CREATE_GROUP, {"input": {"name": "Datum", "filter": created(op, value)}}
    )
    assert [(e["field"], e["code"]) for e in errors] == [
        (["input", "filter", "condition", "value"], "INVALID")
    ]


@pytest.mark.parametrize("op", DATE_OPS)
@pytest.mark.parametrize("value", ["0001-01-01", "9998-12-31"])
async def test_dates_at_the_bounds_work_with_every_operator(
    client: GraphQLClient, op: str, value: str
):
    await new_contact_id(client, lastName="Jansen")
    group = await new_group_id(client, name="Datum", filter=created(op, value))
    everyone = op in ("NEQ", "GT", "GTE") if value == "0001-01-01" else op in ("NEQ", "LT", "LTE")
    assert await member_names(client, group) == (["Jansen"] if everyone else [])


@pytest.mark.parametrize(
    ("tree", "code"),
    [
        ({"condition": {"field": "city", "op": "EQ", "value": "a\x00b"}}, ErrorCode.INVALID_TEXT),
        (
            {"condition": {"field": "city", "op": "IN", "values": ["\ud800"]}},
            ErrorCode.INVALID_TEXT,
        ),
        ({"condition": {"field": "memberOf", "op": "EQ", "value": "\u00b2"}}, ErrorCode.INVALID_ID),
        ({"condition": {"field": "memberOf", "op": "EQ", "value": "01"}}, ErrorCode.INVALID_ID),
        (
            {"condition": {"field": "memberOf", "op": "EQ", "value": str(2**31)}},
            ErrorCode.INVALID_ID,
        ),
        ({"condition": {"field": "city", "op": ["EQ"], "value": "x"}}, ErrorCode.INVALID),
        ({"condition": {"field": ["city"], "op": "EQ", "value": "x"}}, ErrorCode.INVALID),
        ({"condition": "city = x"}, ErrorCode.INVALID),
        ({"all": "everything"}, ErrorCode.INVALID),
        ({"not": [1]}, ErrorCode.INVALID),
        ({"condition": {"field": "city", "op": "IN", "values": "x"}}, ErrorCode.INVALID),
        ("city = x", ErrorCode.INVALID),
    ],
)
def test_every_value_a_filter_holds_is_checked(tree: Any, code: ErrorCode):
    with pytest.raises(UserInputError) as refusal:
        validate_filter(tree)
    assert [p.code for p in refusal.value.problems] == [code]


POISONS = {
    "date past the last year": created("EQ", "9999-12-31"),
    "NUL": {"condition": {"field": "city", "op": "EQ", "value": "a\x00b"}},
    "surrogate": {"condition": {"field": "city", "op": "EQ", "value": "\ud800"}},
    "unknown operator": {"condition": {"field": "city", "op": "WAT", "value": "x"}},
    "not a tree": ["city"],
    "an unlinked group": {"condition": {"field": "memberOf", "op": "EQ", "value": "1"}},
}

EVERYONE_ELSE = """query($contact: ID!) {
  contact(id: $contact) { groups { name } visibleGroups { derived { name } } isCoach }
  groups(first: 50) { nodes { name memberCount } }
  mine: groups(filter: {hasMemberId: $contact}) { nodes { name } }
}"""
POISONED = """query($id: ID!, $contact: ID!) { group(id: $id) {
  name memberCount filter { condition { field } } membershipPath(contactId: $contact) { name } } }"""


async def poison(app: Any, group_id: str, tree: Any) -> None:
    """Write ``tree`` as the group's filter straight into the database, past validation."""
    from graphql_api.graphql_base.relay import parse_global_id

    pk = parse_global_id(group_id)[1]
    statement = text("UPDATE groups SET filter = :tree WHERE id = :id").bindparams(
        bindparam("tree", type_=JSON)
    )
    async with app.state.engine.begin() as connection:
        await connection.execute(statement, {"tree": tree, "id": pk})


@pytest.mark.parametrize("tree", POISONS.values(), ids=POISONS.keys())
async def test_a_poisoned_filter_breaks_only_its_own_groups_fields(
    app: Any, client: GraphQLClient, tree: Any
):
    zwolle = {"condition": {"field": "city", "op": "EQ", "value": "Zwolle"}}
    anna = await new_contact_id(client, lastName="Anna", city="Zwolle")
    await new_group_id(client, name="Eerste")  # group 1: an unlinked group for memberOf
    healthy = await new_group_id(client, name="Zwolle", filter=zwolle, showOnContact=True)
    poisoned = await new_group_id(client, name="Vergiftigd", filter=zwolle, showOnContact=True)
    both = await new_group_id(client, name="Beide", composedOfIds=[healthy, poisoned])
    await poison(app, poisoned, tree)

    # Every other read answers as before, the poisoned group's stored members included.
    data = await client.data(EVERYONE_ELSE, {"contact": anna})
    assert sorted(g["name"] for g in data["contact"]["groups"]) == ["Beide", "Vergiftigd", "Zwolle"]
    assert {g["name"]: g["memberCount"] for g in data["groups"]["nodes"]}["Vergiftigd"] == 1
    assert len(data["mine"]["nodes"]) == 3

    # Writes go on; the healthy group follows them, the poisoned one keeps what it had.
    bram = await new_contact_id(client, lastName="Bram", city="Zwolle")
    changed = await client.data(UPDATE_CONTACT, {"id": anna, "input": {"city": "Kampen"}})
    assert changed["updateContact"]["errors"] == []
    assert await member_names(client, healthy) == ["Bram"]
    assert await member_names(client, poisoned) == ["Anna"]

    # The poisoned group's own fields say what is wrong; its name and count still answer.
    body = await client.execute(POISONED, {"id": poisoned, "contact": anna})
    assert body["data"]["group"]["name"] == "Vergiftigd"
    codes = {tuple(e["path"]): e["extensions"]["code"] for e in body["errors"]}
    # A filter naming a group it is not linked to reads back; it cannot be computed.
    readable = tree is POISONS["an unlinked group"]
    assert codes == {
        **({} if readable else {("group", "filter"): "BROKEN_FILTER"}),
        ("group", "membershipPath"): "BROKEN_FILTER",
    }
    assert all("Vergiftigd" in e["message"] for e in body["errors"])
    through = await client.execute(MEMBERSHIP_PATH, {"id": both, "contactId": bram})
    assert through["errors"][0]["extensions"]["code"] == "BROKEN_FILTER"
    fine = await client.data(MEMBERSHIP_PATH, {"id": healthy, "contactId": bram})
    assert fine["group"]["membershipPath"] == [{"name": "Zwolle"}]
    preview = await client.execute(
        "query($f: ContactFilterInput) { contacts(filter: $f) { totalCount } }",
        {"f": {"condition": {"field": "memberOf", "op": "EQ", "value": poisoned}}},
    )
    assert preview["errors"][0]["extensions"]["code"] == "BROKEN_FILTER"

    # check-membership names it; a new filter mends it.
    async with app.state.sessions() as session:
        found = await differences(session)
    assert any("Vergiftigd" in line for line in found), found
    mended = await client.data(UPDATE_GROUP, {"id": poisoned, "input": {"filter": zwolle}})
    assert mended["updateGroup"]["errors"] == []
    assert await member_names(client, poisoned) == ["Bram"]
    assert "errors" not in await client.execute(POISONED, {"id": poisoned, "contact": bram})


async def test_a_new_contact_is_made_beside_a_poisoned_group(app: Any, client: GraphQLClient):
    poisoned = await new_group_id(client, name="Vergiftigd", filter=created("EQ", "2024-01-01"))
    await poison(app, poisoned, created("EQ", "9999-12-31"))
    data = await client.data(CREATE_CONTACT, {"input": {"lastName": "Nieuw"}})
    assert data["createContact"]["errors"] == []
