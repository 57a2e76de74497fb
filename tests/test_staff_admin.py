"""Users, staff roles and API tokens through the API: what each mutation does, the bad
input each refuses without changing anything, the audit rows, the token cache's bound,
and CORS."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from graphql_api.graphql_base.relay import to_global_id
from graphql_api.kernel.db import utcnow
from graphql_api.testing import GraphQLClient, make_user, unchanged

ROLES = "{ staffRoles { id name builtIn permissions } }"
CREATE_ROLE = """mutation($input: StaffRoleInput!) {
  createStaffRole(input: $input) { staffRole { id name permissions } errors { field code message } } }"""
UPDATE_ROLE = """mutation($id: ID!, $input: StaffRoleInput!) {
  updateStaffRole(id: $id, input: $input) { staffRole { name permissions } errors { field code } } }"""
DELETE_ROLE = (
    """mutation($id: ID!) { deleteStaffRole(id: $id) { deletedId errors { field code } } }"""
)
CREATE_USER = """mutation($input: CreateUserInput!) {
  createUser(input: $input) { user { id name email role { name } } token errors { field code } } }"""
UPDATE_USER = """mutation($id: ID!, $input: UpdateUserInput!) {
  updateUser(id: $id, input: $input) { user { isActive role { name } } errors { field code message } } }"""
CREATE_TOKEN = """mutation($input: CreateApiTokenInput!) {
  createApiToken(input: $input) { apiToken { id name permissions expiresAt } secret errors { field code message } } }"""
REVOKE_TOKEN = """mutation($id: ID!) {
  revokeApiToken(id: $id) { apiToken { revokedAt } errors { field code } } }"""


async def role_ids(client: GraphQLClient) -> dict[str, str]:
    return {r["name"]: r["id"] for r in (await client.data(ROLES))["staffRoles"]}


async def test_built_in_roles_and_a_role_of_ones_own(client: GraphQLClient, app: Any):
    roles = (await client.data(ROLES))["staffRoles"]
    assert [(r["name"], r["builtIn"]) for r in roles] == [
        ("admin", True),
        ("manager", True),
        ("viewer", True),
    ]
    assert roles[2]["permissions"] == ["contacts.view", "groups.view", "templates.view"]
    assert "coach.link_hoomdossier" in roles[0]["permissions"], "admin: plugins' ones too"
    made = await client.data(
        CREATE_ROLE,
        {"input": {"name": "Vrijwilliger", "permissions": ["groups.view", "groups.view"]}},
    )
    role = made["createStaffRole"]["staffRole"]
    assert role["permissions"] == ["groups.view"], "each once"
    changed = await client.data(
        UPDATE_ROLE,
        {"id": role["id"], "input": {"permissions": ["groups.view", "coach.link_hoomdossier"]}},
    )
    assert changed["updateStaffRole"]["staffRole"]["permissions"] == [
        "coach.link_hoomdossier",
        "groups.view",
    ]
    deleted = await client.data(DELETE_ROLE, {"id": role["id"]})
    assert deleted["deleteStaffRole"] == {"deletedId": role["id"], "errors": []}
    log = await client.data("{ auditLog(first: 10) { nodes { action subject actor { name } } } }")
    assert [e["action"] for e in log["auditLog"]["nodes"]][:3] == [
        "staffRole.deleted",
        "staffRole.updated",
        "staffRole.created",
    ]
    assert log["auditLog"]["nodes"][0]["actor"] == {"name": "Johannes Frölich"}


async def test_bad_staff_role_input_is_refused_and_changes_nothing(client: GraphQLClient, app: Any):
    builtin = await role_ids(client)
    cases = [
        (CREATE_ROLE, {"input": {"permissions": ["groups.view"]}}, "REQUIRED"),
        (CREATE_ROLE, {"input": {"name": "r" * 51}}, "TOO_LONG"),
        (CREATE_ROLE, {"input": {"name": " ADMIN "}}, "NAME_TAKEN"),
        (
            CREATE_ROLE,
            {"input": {"name": "X", "permissions": ["groups.fly"]}},
            "UNKNOWN_PERMISSION",
        ),
        (CREATE_ROLE, {"input": {"name": "X", "permissions": ["*"]}}, "UNKNOWN_PERMISSION"),
        (CREATE_ROLE, {"input": {"name": "X", "permissions": ["p"] * 201}}, "TOO_MANY"),
        (UPDATE_ROLE, {"id": builtin["viewer"], "input": {"name": "kijker"}}, "BUILT_IN_ROLE"),
        (UPDATE_ROLE, {"id": "not-an-id", "input": {"name": "kijker"}}, "INVALID_ID"),
        (DELETE_ROLE, {"id": builtin["admin"]}, "BUILT_IN_ROLE"),
        (DELETE_ROLE, {"id": to_global_id("StaffRole", 999)}, "NOT_FOUND"),
        (DELETE_ROLE, {"id": to_global_id("Group", 1)}, "INVALID_ID"),
    ]
    for document, variables, code in cases:
        async with unchanged(app):
            body = await client.data(document, variables)
        [payload] = body.values()
        assert [e["code"] for e in payload["errors"]] == [code], (variables, payload)


async def test_a_role_held_by_a_user_is_not_deleted(client: GraphQLClient, app: Any):
    made = await client.data(CREATE_ROLE, {"input": {"name": "Kijker", "permissions": []}})
    role_id = made["createStaffRole"]["staffRole"]["id"]
    user = {"name": "Bea", "email": "bea@example.coop", "roleId": role_id}
    assert (await client.data(CREATE_USER, {"input": user}))["createUser"]["errors"] == []
    async with unchanged(app):
        refused = await client.data(DELETE_ROLE, {"id": role_id})
    assert refused["deleteStaffRole"]["errors"] == [{"field": ["id"], "code": "STAFF_ROLE_IN_USE"}]


async def test_a_new_user_gets_a_working_token_and_their_roles_permissions(
    client: GraphQLClient, http: httpx.AsyncClient
):
    roles = await role_ids(client)
    made = await client.data(
        CREATE_USER,
        {"input": {"name": " Bea ", "email": "Bea@Example.coop", "roleId": roles["viewer"]}},
    )
    created = made["createUser"]
    assert created["user"]["name"] == "Bea" and created["user"]["email"] == "bea@example.coop"
    assert created["user"]["role"] == {"name": "viewer"}
    bea = GraphQLClient(http, created["token"])
    assert (await bea.data("{ me { permissions } }"))["me"]["permissions"] == [
        "contacts.view",
        "groups.view",
        "templates.view",
    ]


async def test_bad_user_input_is_refused_and_changes_nothing(client: GraphQLClient, app: Any):
    roles = await role_ids(client)
    ok = {"name": "Bea", "email": "bea@example.coop", "roleId": roles["manager"]}
    cases = [
        ({**ok, "name": " "}, [(["input", "name"], "REQUIRED")]),
        ({**ok, "email": "bea"}, [(["input", "email"], "INVALID")]),
        ({**ok, "email": "JOHANNES@example.coop"}, [(["input", "email"], "EMAIL_TAKEN")]),
        ({**ok, "roleId": to_global_id("StaffRole", 999)}, [(["input", "roleId"], "NOT_FOUND")]),
        ({**ok, "roleId": "nonsense"}, [(["input", "roleId"], "INVALID_ID")]),
        (
            {**ok, "name": "n" * 201, "email": ""},
            [(["input", "name"], "TOO_LONG"), (["input", "email"], "REQUIRED")],
        ),
    ]
    for values, expected in cases:
        async with unchanged(app):
            body = await client.data(CREATE_USER, {"input": values})
        errors = body["createUser"]["errors"]
        assert [(e["field"], e["code"]) for e in errors] == expected, values
    wrong_type = await client.execute(CREATE_USER, {"input": {**ok, "name": 7}})
    assert "data" not in wrong_type, "a variable of the wrong type: nothing ran"
    assert wrong_type["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_the_last_active_admin_stays(client: GraphQLClient, app: Any, admin: tuple[int, str]):
    roles = await role_ids(client)
    me = to_global_id("User", admin[0])
    for change in ({"isActive": False}, {"roleId": roles["manager"]}):
        async with unchanged(app):
            body = await client.data(UPDATE_USER, {"id": me, "input": change})
        [error] = body["updateUser"]["errors"]
        assert error["code"] == "LAST_ADMIN" and "last active admin" in error["message"]
    await make_user(app, "Bram", "bram@example.coop", admin=True)
    demoted = await client.data(UPDATE_USER, {"id": me, "input": {"roleId": roles["manager"]}})
    assert demoted["updateUser"] == {
        "user": {"isActive": True, "role": {"name": "manager"}},
        "errors": [],
    }


async def test_tokens_are_named_narrowed_expiring_and_revocable(
    client: GraphQLClient, http: httpx.AsyncClient, app: Any
):
    later = (utcnow() + timedelta(days=30)).isoformat()
    made = await client.data(
        CREATE_TOKEN,
        {"input": {"name": "website", "permissions": ["groups.view"], "expiresAt": later}},
    )
    token = made["createApiToken"]
    assert token["apiToken"]["permissions"] == ["groups.view"]
    assert token["secret"].startswith("gapi_")
    website = GraphQLClient(http, token["secret"])
    assert (await website.data("{ me { permissions } }"))["me"]["permissions"] == ["groups.view"]
    widened = await website.data(
        CREATE_TOKEN, {"input": {"name": "more", "permissions": ["users.manage"]}}
    )
    assert [e["code"] for e in widened["createApiToken"]["errors"]] == ["FORBIDDEN"]
    copied = await website.data(CREATE_TOKEN, {"input": {"name": "same"}})
    assert copied["createApiToken"]["apiToken"]["permissions"] == ["groups.view"], (
        "a narrowed token makes only narrowed tokens"
    )
    listed = await client.data("{ apiTokens { name lastUsedAt revokedAt } }")
    names = [t["name"] for t in listed["apiTokens"]]
    assert names == ["same", "website", "first token"]
    assert listed["apiTokens"][1]["lastUsedAt"] is not None

    revoked = await client.data(REVOKE_TOKEN, {"id": token["apiToken"]["id"]})
    assert revoked["revokeApiToken"]["apiToken"]["revokedAt"] is not None
    response = await website.post("{ me { permissions } }")
    assert response.status_code == 401, "revoked: refused at once in this process"
    again = await client.data(REVOKE_TOKEN, {"id": token["apiToken"]["id"]})
    assert again["revokeApiToken"]["errors"] == [{"field": ["id"], "code": "ALREADY_REVOKED"}]


async def test_bad_token_input_is_refused_and_changes_nothing(client: GraphQLClient, app: Any):
    past = (utcnow() - timedelta(seconds=1)).isoformat()
    far = (utcnow() + timedelta(days=4 * 365)).isoformat()
    cases = [
        ({"name": ""}, "REQUIRED"),
        ({"name": "t" * 101}, "TOO_LONG"),
        ({"name": "t", "expiresAt": past}, "INVALID"),
        ({"name": "t", "expiresAt": far}, "INVALID"),
        ({"name": "t", "permissions": ["groups.fly"]}, "UNKNOWN_PERMISSION"),
    ]
    for values, code in cases:
        async with unchanged(app):
            body = await client.data(CREATE_TOKEN, {"input": values})
        assert [e["code"] for e in body["createApiToken"]["errors"]] == [code], values
    async with unchanged(app):
        missing = await client.data(REVOKE_TOKEN, {"id": to_global_id("ApiToken", 999)})
        malformed = await client.data(REVOKE_TOKEN, {"id": "???"})
    assert missing["revokeApiToken"]["errors"] == [{"field": ["id"], "code": "NOT_FOUND"}]
    assert malformed["revokeApiToken"]["errors"] == [{"field": ["id"], "code": "INVALID_ID"}]


async def test_anothers_token_is_not_found_without_users_manage(
    client: GraphQLClient, http: httpx.AsyncClient, app: Any
):
    _, anna = await make_user(app, "Anna", "anna@example.coop", role="manager")
    mine = (await client.data("{ apiTokens { id } }"))["apiTokens"][0]["id"]
    async with unchanged(app):
        body = await GraphQLClient(http, anna).data(REVOKE_TOKEN, {"id": mine})
    assert body["revokeApiToken"]["errors"] == [{"field": ["id"], "code": "NOT_FOUND"}]


async def test_a_revocation_reaches_another_process_within_the_cache_lifetime(
    app_factory: Any, admin: tuple[int, str]
):
    """Two applications on one database stand for two processes; the second has checked
    the token before the first revokes it."""
    first = app_factory(token_cache_seconds=0.5)
    second = app_factory(token_cache_seconds=0.5)
    _, token = await make_user(first, "Anna", "anna@example.coop", role="manager")
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://a") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://b") as b,
    ):
        anna_on_b = GraphQLClient(b, token)
        assert (await anna_on_b.post("{ me { permissions } }")).status_code == 200
        anna_on_a = GraphQLClient(a, token)
        [listed] = (await anna_on_a.data("{ apiTokens { id } }"))["apiTokens"]
        await anna_on_a.data(REVOKE_TOKEN, {"id": listed["id"]})
        assert (await anna_on_a.post("{ me { permissions } }")).status_code == 401
        await asyncio.sleep(0.6)
        assert (await anna_on_b.post("{ me { permissions } }")).status_code == 401


async def test_cors_preflight_from_an_allowed_origin_only(app_factory: Any):
    app = app_factory(cors_origins="https://crm.example.coop")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        asked = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        allowed = await http.options(
            "/graphql", headers={"Origin": "https://crm.example.coop", **asked}
        )
        other = await http.options("/graphql", headers={"Origin": "https://evil.example", **asked})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://crm.example.coop"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


async def test_no_cors_headers_by_default(http: httpx.AsyncClient):
    response = await http.options(
        "/graphql",
        headers={"Origin": "https://crm.example.coop", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


async def test_bad_user_changes_are_refused_and_change_nothing(
    client: GraphQLClient, app: Any, admin: tuple[int, str]
):
    roles = await role_ids(client)
    bea, _ = await make_user(app, "Bea", "bea@example.coop")
    bea_id = to_global_id("User", bea)
    cases = [
        (bea_id, {"name": " "}, [(["input", "name"], "REQUIRED")]),
        (bea_id, {"email": "bea"}, [(["input", "email"], "INVALID")]),
        (bea_id, {"email": "JOHANNES@example.coop"}, [(["input", "email"], "EMAIL_TAKEN")]),
        (bea_id, {"roleId": to_global_id("StaffRole", 999)}, [(["input", "roleId"], "NOT_FOUND")]),
        (bea_id, {"roleId": "nonsense"}, [(["input", "roleId"], "INVALID_ID")]),
        (to_global_id("User", 999_999), {"name": "X"}, [(["id"], "NOT_FOUND")]),
        (to_global_id("Group", bea), {"name": "X"}, [(["id"], "INVALID_ID")]),
    ]
    assert roles["manager"]
    for user_id, changes, expected in cases:
        async with unchanged(app):
            body = await client.data(UPDATE_USER, {"id": user_id, "input": changes})
        errors = body["updateUser"]["errors"]
        assert [(e["field"], e["code"]) for e in errors] == expected, changes
