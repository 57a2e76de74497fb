"""Who may do what: every Query and Mutation field of the schema (core and built-in
plugins) against every kind of caller, with the expected outcome declared in one table.

A new operation that is not in ``OPERATIONS`` fails ``test_every_operation_declares_its
_permission``, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from graphql_api.graphql_base.relay import to_global_id
from graphql_api.kernel.db import utcnow
from graphql_api.testing import GraphQLClient, make_user, unchanged
from graphql_api.users.models import ApiToken, User
from graphql_api.users.tokens import hash_token

NOWHERE = {
    type_name: to_global_id(type_name, 999_999)
    for type_name in ("Group", "Contact", "User", "EmailTemplate", "StaffRole", "ApiToken")
}
NOWHERE["Delivery"] = to_global_id("NotificationDelivery", 999_999)
NOWHERE["Job"] = to_global_id("Job", 999_999)
UP = to_global_id("Upload", 999_999)
MAIL = to_global_id("GroupMail", 999_999)


@dataclass(frozen=True)
class Operation:
    permission: str | None
    """What the field needs; None: any signed-in caller."""
    document: str


def _op(permission: str | None, document: str) -> Operation:
    return Operation(permission, document)


G, C, U, T, R, K, D, J = (
    NOWHERE[n]
    for n in (
        "Group",
        "Contact",
        "User",
        "EmailTemplate",
        "StaffRole",
        "ApiToken",
        "Delivery",
        "Job",
    )
)

OPERATIONS: dict[str, Operation] = {
    # Query
    "group": _op("groups.view", f'{{ group(id: "{G}") {{ name }} }}'),
    "groups": _op("groups.view", "{ groups(first: 1) { totalCount } }"),
    "contact": _op("contacts.view", f'{{ contact(id: "{C}") {{ displayName }} }}'),
    "contacts": _op("contacts.view", "{ contacts(first: 1) { totalCount } }"),
    "me": _op(None, "{ me { permissions } }"),
    "viewer": _op(None, "{ viewer { name } }"),
    "users": _op("users.manage", "{ users { name } }"),
    "staffRoles": _op("users.manage", "{ staffRoles { name } }"),
    "permissions": _op("users.manage", "{ permissions { name } }"),
    "apiTokens": _op(None, "{ apiTokens { name } }"),
    "auditLog": _op("users.manage", "{ auditLog(first: 1) { totalCount } }"),
    "emailTemplates": _op("templates.view", "{ emailTemplates { name } }"),
    "roles": _op(None, "{ roles { key } }"),
    "plugins": _op(None, "{ plugins { name } }"),
    "filterFields": _op(None, "{ filterFields { name label type operators choices } }"),
    "notificationDeliveries": _op(
        "deliveries.manage", "{ notificationDeliveries(first: 1) { totalCount } }"
    ),
    "job": _op(None, f'{{ job(id: "{J}") {{ state }} }}'),
    "jobs": _op(None, "{ jobs(first: 1) { totalCount } }"),
    "node": _op("groups.view", f'{{ node(id: "{G}") {{ id }} }}'),
    "nodes": _op("groups.view", f'{{ nodes(ids: ["{G}"]) {{ id }} }}'),
    "coaches": _op("contacts.view", "{ coaches(first: 1) { totalCount } }"),
    "externalParties": _op("contacts.view", "{ externalParties(first: 1) { totalCount } }"),
    "projectLeaders": _op("contacts.view", "{ projectLeaders(first: 1) { totalCount } }"),
    # Mutation
    "createGroup": _op(
        "groups.manage", 'mutation { createGroup(input: {name: "M"}) { errors { code message } } }'
    ),
    "updateGroup": _op(
        "groups.manage",
        f'mutation {{ updateGroup(id: "{G}", input: {{name: "N"}}) {{ errors {{ code message }} }} }}',
    ),
    "deleteGroup": _op(
        "groups.manage", f'mutation {{ deleteGroup(id: "{G}") {{ errors {{ code message }} }} }}'
    ),
    "convertToStatic": _op(
        "groups.manage",
        f'mutation {{ convertToStatic(groupId: "{G}") {{ errors {{ code message }} }} }}',
    ),
    "addGroupMembers": _op(
        "members.manage",
        f'mutation {{ addGroupMembers(groupId: "{G}", contactIds: ["{C}"]) {{ errors {{ code message }} }} }}',
    ),
    "removeGroupMembers": _op(
        "members.manage",
        f'mutation {{ removeGroupMembers(groupId: "{G}", contactIds: ["{C}"]) {{ errors {{ code message }} }} }}',
    ),
    "createContact": _op(
        "contacts.manage",
        'mutation { createContact(input: {lastName: "M"}) { errors { code message } } }',
    ),
    "updateContact": _op(
        "contacts.manage",
        f'mutation {{ updateContact(id: "{C}", input: {{lastName: "N"}}) {{ errors {{ code message }} }} }}',
    ),
    "optContactOutOfMail": _op(
        "contacts.manage",
        f'mutation {{ optContactOutOfMail(contactId: "{C}", groupId: "{G}") {{ errors {{ code message }} }} }}',
    ),
    "withdrawContactMailOptOut": _op(
        "contacts.manage",
        f'mutation {{ withdrawContactMailOptOut(contactId: "{C}", groupId: "{G}") {{ errors {{ code message }} }} }}',
    ),
    "createEmailTemplate": _op(
        "templates.manage",
        'mutation { createEmailTemplate(input: {name: "M", subject: "S", body: "B"}) { errors { code message } } }',
    ),
    "updateEmailTemplate": _op(
        "templates.manage",
        f'mutation {{ updateEmailTemplate(id: "{T}", input: {{name: "N"}}) {{ errors {{ code message }} }} }}',
    ),
    "deleteEmailTemplate": _op(
        "templates.manage",
        f'mutation {{ deleteEmailTemplate(id: "{T}") {{ errors {{ code message }} }} }}',
    ),
    "retryDelivery": _op(
        "deliveries.manage",
        f'mutation {{ retryDelivery(id: "{D}") {{ errors {{ code message }} }} }}',
    ),
    "cancelJob": _op(None, f'mutation {{ cancelJob(id: "{J}") {{ errors {{ code message }} }} }}'),
    "createUser": _op(
        "users.manage",
        f'mutation {{ createUser(input: {{name: "M", email: "m@example.coop", roleId: "{R}"}}) {{ errors {{ code message }} }} }}',
    ),
    "updateUser": _op(
        "users.manage",
        f'mutation {{ updateUser(id: "{U}", input: {{name: "N"}}) {{ errors {{ code message }} }} }}',
    ),
    "createStaffRole": _op(
        "users.manage",
        'mutation { createStaffRole(input: {name: "M"}) { errors { code message } } }',
    ),
    "updateStaffRole": _op(
        "users.manage",
        f'mutation {{ updateStaffRole(id: "{R}", input: {{name: "N"}}) {{ errors {{ code message }} }} }}',
    ),
    "deleteStaffRole": _op(
        "users.manage", f'mutation {{ deleteStaffRole(id: "{R}") {{ errors {{ code message }} }} }}'
    ),
    "createApiToken": _op(
        None, 'mutation { createApiToken(input: {name: "M"}) { errors { code message } } }'
    ),
    "revokeApiToken": _op(
        None, f'mutation {{ revokeApiToken(id: "{K}") {{ errors {{ code message }} }} }}'
    ),
    "invitePortalUser": _op(
        "contacts.manage",
        f'mutation {{ invitePortalUser(contactId: "{C}") {{ errors {{ code message }} }} }}',
    ),
    "disablePortalUser": _op(
        "contacts.manage",
        f'mutation {{ disablePortalUser(contactId: "{C}") {{ errors {{ code message }} }} }}',
    ),
    "eraseContact": _op(
        "contacts.manage",
        f'mutation {{ eraseContact(contactId: "{C}") {{ errors {{ code message }} }} }}',
    ),
    "exportGroupMembers": _op(
        "contacts.export",
        f'mutation {{ exportGroupMembers(groupId: "{G}") {{ url errors {{ code message }} }} }}',
    ),
    "exportGroupReport": _op(
        "contacts.export",
        f'mutation {{ exportGroupReport(groupIds: ["{G}"]) {{ url errors {{ code message }} }} }}',
    ),
    "importPreview": _op(
        "contacts.import", f'{{ importPreview(uploadId: "{UP}") {{ columns errors {{ code }} }} }}'
    ),
    "importMappings": _op("contacts.import", "{ importMappings { name } }"),
    "importReport": _op("contacts.import", f'{{ importReport(jobId: "{J}") {{ created }} }}'),
    "startImport": _op(
        "contacts.import",
        f'mutation {{ startImport(input: {{uploadId: "{UP}", columns: '
        '[{column: "E-mail", field: EMAIL}]}) { errors { code message } } }',
    ),
    "undoImport": _op(
        "contacts.import",
        f'mutation {{ undoImport(jobId: "{J}") {{ errors {{ code message }} }} }}',
    ),
    "saveImportMapping": _op(
        "contacts.import",
        'mutation { saveImportMapping(name: "Leden", columns: [{column: "E-mail", '
        "field: EMAIL}]) { errors { code message } } }",
    ),
    "deleteImportMapping": _op(
        "contacts.import",
        'mutation { deleteImportMapping(name: "Onbekend") { errors { code message } } }',
    ),
    "groupMail": _op(
        "email_notifications.group_mail", f'{{ groupMail(id: "{MAIL}") {{ subject }} }}'
    ),
    "groupMails": _op(
        "email_notifications.group_mail", f'{{ groupMails(groupId: "{G}") {{ totalCount }} }}'
    ),
    "previewGroupMail": _op(
        "email_notifications.group_mail",
        f'{{ previewGroupMail(groupId: "{G}", subject: "S", body: "B") {{ errors {{ code message }} }} }}',
    ),
    "sendGroupMail": _op(
        "email_notifications.group_mail",
        f'mutation {{ sendGroupMail(input: {{groupId: "{G}", subject: "S", body: "B"}}) {{ errors {{ code message }} }} }}',
    ),
    "retryGroupMail": _op(
        "email_notifications.group_mail",
        f'mutation {{ retryGroupMail(id: "{MAIL}") {{ errors {{ code message }} }} }}',
    ),
    "mailingListSync": _op("groups.view", f'{{ mailingListSync(groupId: "{G}") {{ listId }} }}'),
    **{
        name: _op(
            "laposta.manage",
            f'mutation {{ {name}(groupId: "{G}"{listed}) {{ errors {{ code message }} }} }}',
        )
        for name, listed in (
            ("linkMailingList", ', listId: "abc123"'),
            ("unlinkMailingList", ""),
            ("resyncMailingList", ""),
            ("pullMailingListUnsubscribes", ""),
        )
    },
    "linkHoomdossier": _op(
        "coach.link_hoomdossier",
        f'mutation {{ linkHoomdossier(contactId: "{C}", accountId: "H1") {{ errors {{ code message }} }} }}',
    ),
    "unlinkHoomdossier": _op(
        "coach.link_hoomdossier",
        f'mutation {{ unlinkHoomdossier(contactId: "{C}") {{ errors {{ code message }} }} }}',
    ),
}

VIEWER = {"groups.view", "contacts.view", "templates.view"}
MANAGER = VIEWER | {
    "groups.manage",
    "members.manage",
    "contacts.manage",
    "contacts.export",
    "contacts.import",
    "templates.manage",
}
NARROWED = {"groups.view"}
EVERYTHING = None
CALLERS: dict[str, set[str] | None] = {
    "viewer": VIEWER,
    "manager": MANAGER,
    "admin": EVERYTHING,
    "narrowed": NARROWED,
}
"""Signed-in callers and what they hold (None: everything)."""
SHUT_OUT = ["anonymous", "expired", "revoked", "deactivated"]
"""Callers who get 401 and no data, whatever they ask."""


def test_every_operation_declares_its_permission(app: Any):
    schema = app.state.schema
    fields = {
        name: field
        for root in (schema.get_type_by_name("Query"), schema.get_type_by_name("Mutation"))
        for name, field in _graphql_fields(schema, root.name).items()
    }
    undeclared = sorted(set(fields) - set(OPERATIONS))
    assert not undeclared, f"operations without a declared permission: {undeclared}"
    assert not sorted(set(OPERATIONS) - set(fields)), "declared operations the schema lacks"
    for name, operation in OPERATIONS.items():
        description = fields[name].description or ""
        if operation.permission is not None and name not in ("node", "nodes"):
            assert f"Needs `{operation.permission}`." in description, name
        if operation.permission is None:
            assert "Needs `" not in description, name


def _graphql_fields(schema: Any, type_name: str) -> dict[str, Any]:
    return schema._schema.get_type(type_name).fields


@pytest.fixture
async def callers(app: Any, http: httpx.AsyncClient) -> dict[str, GraphQLClient]:
    """One client per kind of caller; the narrowed token is an admin's, narrowed to
    groups.view."""
    tokens = {
        role: (await make_user(app, role.title(), f"{role}@example.coop", role=role))[1]
        for role in ("viewer", "manager", "admin")
    }
    admin = GraphQLClient(http, tokens["admin"])
    narrowed = await admin.data(
        'mutation { createApiToken(input: {name: "sync", permissions: ["groups.view"]}) '
        "{ secret errors { code } } }"
    )
    _, expired = await make_user(app, "Verlopen", "expired@example.coop", "admin")
    _, revoked = await make_user(app, "Ingetrokken", "revoked@example.coop", "admin")
    gone, deactivated = await make_user(app, "Weg", "gone@example.coop", "admin")
    async with app.state.sessions() as session, session.begin():
        past = utcnow() - timedelta(minutes=1)
        await session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(expired))
            .values(expires_at=past)
        )
        await session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(revoked))
            .values(revoked_at=past)
        )
        await session.execute(update(User).where(User.id == gone).values(is_active=False))
    return {
        **{role: GraphQLClient(http, token) for role, token in tokens.items()},
        "narrowed": GraphQLClient(http, narrowed["createApiToken"]["secret"]),
        "anonymous": GraphQLClient(http, None),
        "expired": GraphQLClient(http, expired),
        "revoked": GraphQLClient(http, revoked),
        "deactivated": GraphQLClient(http, deactivated),
    }


def _forbidden_codes(body: dict[str, Any]) -> list[str]:
    """Every FORBIDDEN in the answer: top-level errors and payload errors."""
    found = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    for payload in (body.get("data") or {}).values():
        if isinstance(payload, dict):
            found += [e["code"] for e in payload.get("errors") or []]
    return [code for code in found if code == "FORBIDDEN"]


async def test_the_authorization_matrix(app: Any, callers: dict[str, GraphQLClient]):
    for name, operation in OPERATIONS.items():
        for caller in SHUT_OUT:
            response = await callers[caller].post(operation.document)
            assert response.status_code == 401, (name, caller)
            assert "data" not in response.json(), (name, caller)
        for caller, holds in CALLERS.items():
            allowed = operation.permission is None or holds is None or operation.permission in holds
            if allowed:
                body = (await callers[caller].post(operation.document)).json()
                assert _forbidden_codes(body) == [], (name, caller, body)
                assert not body.get("errors"), (name, caller, body)
                continue
            async with unchanged(app):
                body = (await callers[caller].post(operation.document)).json()
            assert _forbidden_codes(body), (name, caller, body)
            message = str(body)
            assert operation.permission in message, (name, caller, body)


async def test_a_refused_token_says_why(callers: dict[str, GraphQLClient]):
    reasons = {}
    for caller in SHUT_OUT:
        response = await callers[caller].post("{ me { permissions } }")
        reasons[caller] = response.json()["errors"][0]["message"]
    assert reasons["anonymous"].startswith("Missing or invalid API token")
    assert reasons["expired"].startswith("This API token expired at ")
    assert reasons["revoked"].startswith("This API token was revoked at ")
    assert reasons["deactivated"] == "The user of this API token is deactivated."


async def test_me_tells_a_frontend_what_to_show(callers: dict[str, GraphQLClient]):
    query = "{ me { user { name } permissions } }"
    viewer = await callers["viewer"].data(query)
    assert viewer == {"me": {"user": {"name": "Viewer"}, "permissions": sorted(VIEWER)}}
    narrowed = await callers["narrowed"].data(query)
    assert narrowed == {"me": {"user": {"name": "Admin"}, "permissions": ["groups.view"]}}
    admin = (await callers["admin"].data(query))["me"]["permissions"]
    assert {"users.manage", "deliveries.manage", "coach.link_hoomdossier"} <= set(admin)


async def test_a_contacts_details_are_refused_not_null_without_contacts_view(
    app: Any, callers: dict[str, GraphQLClient]
):
    admin = callers["admin"]
    made = await admin.data(
        'mutation { createContact(input: {lastName: "Bos", email: "bos@example.nl"}) '
        "{ contact { id } } }"
    )
    group = await admin.data('mutation { createGroup(input: {name: "Buren"}) { group { id } } }')
    group_id = group["createGroup"]["group"]["id"]
    contact_id = made["createContact"]["contact"]["id"]
    await admin.data(
        "mutation($g: ID!, $c: [ID!]!) { addGroupMembers(groupId: $g, contactIds: $c) "
        "{ errors { code message } } }",
        {"g": group_id, "c": [contact_id]},
    )
    query = "query($g: ID!) { group(id: $g) { members(first: 5) { nodes { displayName email } } } }"
    body = await callers["narrowed"].execute(query, {"g": group_id})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert "contacts.view" in error["message"]
    names = await callers["narrowed"].data(
        "query($g: ID!) { group(id: $g) { members(first: 5) { nodes { displayName } } } }",
        {"g": group_id},
    )
    assert names["group"]["members"]["nodes"] == [{"displayName": "Bos"}]
    full = await callers["viewer"].data(query, {"g": group_id})
    assert full["group"]["members"]["nodes"] == [{"displayName": "Bos", "email": "bos@example.nl"}]
