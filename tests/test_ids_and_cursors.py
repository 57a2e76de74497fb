"""Global ids and cursors are taken only exactly as the API writes them: anything else is
INVALID_ID or INVALID_CURSOR, never a server fault, a stray match or a database error."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from graphql_api.graphql_base.relay import parse_global_id, to_global_id
from graphql_api.kernel.validation import MAX_ID as MAX_KEY
from graphql_api.testing import DELETE_GROUP, GraphQLClient, new_group_id, unchanged


def encoded(plain: str) -> str:
    return base64.urlsafe_b64encode(plain.encode()).decode()


NOT_CANONICAL = [
    encoded("Group:²"),  # a digit, but not an ASCII one
    encoded("Group:\u0661"),  # ARABIC-INDIC DIGIT ONE
    encoded("Group:1\n"),
    encoded("Group: 1"),
    encoded("Group:01"),
    encoded("Group:-1"),
    encoded("Group:123456789012345678"),
    encoded(f"Group:{MAX_KEY + 1}"),
    encoded("Group:1").rstrip("="),  # the same key, padded otherwise
    encoded("Group:1") + "\n",
    "R3JvdXA6MQ==".lower(),
    "",
]


@pytest.mark.parametrize("global_id", NOT_CANONICAL)
def test_only_canonical_ids_parse(global_id: str):
    assert parse_global_id(global_id) is None


def test_canonical_ids_parse_up_to_the_largest_key():
    assert parse_global_id(to_global_id("Group", 1)) == ("Group", 1)
    assert parse_global_id(to_global_id("Group", MAX_KEY)) == ("Group", MAX_KEY)


GROUP = "query($id: ID!) { group(id: $id) { id } node(id: $id) { id } }"


@pytest.mark.parametrize("global_id", NOT_CANONICAL)
async def test_a_malformed_id_is_invalid_id_and_not_echoed(
    app: Any, client: GraphQLClient, global_id: str
):
    await new_group_id(client, name="Eerste")
    body = await client.execute("query($id: ID!) { group(id: $id) { id } }", {"id": global_id})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INVALID_ID"
    async with unchanged(app):
        data = await client.data(DELETE_GROUP, {"id": global_id})
    [problem] = data["deleteGroup"]["errors"]
    assert problem == {"field": ["id"], "code": "INVALID_ID", "message": "This is not a Group id."}
    found = await client.execute("query($id: ID!) { node(id: $id) { id } }", {"id": global_id})
    assert found["data"] == {"node": None}
    [error] = found["errors"]
    assert error["extensions"]["code"] == "INVALID_ID"
    assert global_id.strip() == "" or global_id.strip() not in error["message"]


async def test_the_largest_key_is_looked_up_on_every_database(client: GraphQLClient):
    data = await client.data(GROUP, {"id": to_global_id("Group", MAX_KEY)})
    assert data == {"group": None, "node": None}


async def test_delete_answers_the_canonical_id(client: GraphQLClient):
    group_id = await new_group_id(client, name="Weg")
    data = await client.data(DELETE_GROUP, {"id": group_id})
    assert data["deleteGroup"] == {"deletedId": group_id, "errors": []}


LIST = """query($after: String, $order: GroupOrder) {
  groups(after: $after, orderBy: $order, first: 10) { nodes { name } } }"""


def cursor(key: Any, **dumps: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, **dumps).encode()).decode()


BAD_CURSORS = [
    ("NAME_ASC", base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode()),
    ("NAME_ASC", cursor(["a", 2**31])),
    ("NAME_ASC", cursor(["a", -1])),
    ("NAME_ASC", cursor(["a", 1.0])),
    ("NAME_ASC", cursor(["a\u0000", 1])),
    ("NAME_ASC", cursor(["\ud800", 1])),
    ("NAME_ASC", cursor(["x" * 801, 1])),
    ("NAME_ASC", cursor(["a", 1], separators=(",", ":"))),  # not as the API writes it
    ("NAME_ASC", "garbage!"),
    ("NAME_ASC", "=" * 2000),
    ("CREATED_AT_ASC", cursor(["0001-01-01T00:00:00+01:00", 1])),
    ("CREATED_AT_DESC", cursor(["9999-12-31T23:59:59-05:00", 1])),
    ("CREATED_AT_DESC", cursor(["9999-12-31T23:59:59.999999+00:00", 1])),
    ("CREATED_AT_ASC", cursor(["0000-12-31T00:00:00+00:00", 1])),
    ("CREATED_AT_ASC", cursor(["2024-01-01T00:00:00", 1])),
    ("CREATED_AT_ASC", cursor(["2024-01-01", 1])),
]


@pytest.mark.parametrize(("order", "after"), BAD_CURSORS)
async def test_a_bad_cursor_is_invalid_cursor(client: GraphQLClient, order: str, after: str):
    await new_group_id(client, name="Eerste")
    body = await client.execute(LIST, {"after": after, "order": order})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INVALID_CURSOR", error
    assert error["message"].startswith("Invalid cursor: ")


@pytest.mark.parametrize(
    ("order", "after"),
    [
        ("CREATED_AT_ASC", cursor(["0001-01-01T00:00:00+00:00", 1])),
        ("CREATED_AT_DESC", cursor(["9998-12-31T23:59:59.999999+00:00", 2**31 - 1])),
        ("NAME_ASC", cursor(["", 0])),
    ],
)
async def test_cursors_at_the_bounds_work_on_every_database(
    client: GraphQLClient, order: str, after: str
):
    await new_group_id(client, name="Eerste")
    data = await client.data(LIST, {"after": after, "order": order})
    assert data["groups"]["nodes"] == [{"name": "Eerste"}]
