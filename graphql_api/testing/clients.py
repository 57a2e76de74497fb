"""Acting on the app as someone: a GraphQL client over ASGI, the users and portal sessions it
acts as, and a counter of the SQL statements the app sends meanwhile."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette

from graphql_api.kernel.access import SYSTEM
from graphql_api.users.accounts import create_user
from graphql_api.users.staff_roles import role_named


class GraphQLClient:
    """Sends real GraphQL requests over ASGI, as the user whose token it holds."""

    def __init__(self, http: httpx.AsyncClient, token: str | None, path: str = "/graphql") -> None:
        self.http = http
        self.token = token
        self.path = path
        """``/graphql`` for staff, ``/portal/graphql`` for a contact's portal session."""

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        """The raw response, for tests of status codes and headers."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return await self.http.post(
            self.path, json={"query": query, "variables": variables or {}}, headers=headers
        )

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole JSON answer (``data`` and maybe ``errors``)."""
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``data`` of an answer that must have no top-level errors."""
        body = await self.execute(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]


async def make_user(
    app: Starlette, name: str, email: str, role: str = "manager", admin: bool = False
) -> tuple[int, str]:
    """A user of staff role ``role`` (``admin=True``: the admin role) straight in the
    database, with a token: (user id, token)."""
    async with app.state.sessions() as session, session.begin():
        staff_role = await role_named(session, "admin" if admin else role)
        assert staff_role is not None, f"no staff role {role!r}"
        values = {"name": name, "email": email, "role_id": staff_role.id}
        user, token = await create_user(session, SYSTEM, values)
        return user.id, token


async def admin_client(app: Starlette) -> tuple[httpx.AsyncClient, GraphQLClient]:
    """An admin (made with ``make_user``) and a client of ``app`` over ASGI acting as them;
    close the ``httpx`` client when done (``async with http:``)."""
    _, token = await make_user(app, "Anna Beheer", "beheer@example.coop", admin=True)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    return http, GraphQLClient(http, token)


PORTAL_PASSWORD = "zonnige-dagen-42"


async def portal_client(
    client: GraphQLClient, contact_id: str, password: str = PORTAL_PASSWORD
) -> GraphQLClient:
    """A portal session of the contact: invited by ``client`` (staff), the invitation
    accepted with ``password``, logged in; a client of ``/portal/graphql``."""
    invited = await client.data(
        "mutation($c: ID!) { invitePortalUser(contactId: $c) { token errors { code } } }",
        {"c": contact_id},
    )
    token = invited["invitePortalUser"]["token"]
    anonymous = GraphQLClient(client.http, None, path="/portal/graphql")
    accepted = await anonymous.data(
        "mutation($t: String!, $p: String!) { acceptPortalInvitation(token: $t, password: $p) "
        "{ ok errors { code message } } }",
        {"t": token, "p": password},
    )
    assert accepted["acceptPortalInvitation"]["ok"], accepted
    email = await client.data("query($c: ID!) { contact(id: $c) { email } }", {"c": contact_id})
    logged_in = await anonymous.data(
        "mutation($e: String!, $p: String!) { portalLogin(email: $e, password: $p) "
        "{ sessionToken errors { code message } } }",
        {"e": email["contact"]["email"], "p": password},
    )
    session = logged_in["portalLogin"]["sessionToken"]
    assert session, logged_in
    return GraphQLClient(client.http, session, path="/portal/graphql")


class StatementCounter:
    """Counts the SQL statements the app's engine sends while it is active."""

    def __init__(self) -> None:
        self.count = 0
        self.statements: list[str] = []
        self.active = False

    def __call__(self, *args: Any) -> None:
        if self.active:
            self.count += 1
            self.statements.append(args[2])

    def __enter__(self) -> StatementCounter:
        self.count, self.statements, self.active = 0, [], True
        return self

    def __exit__(self, *_: object) -> None:
        self.active = False
