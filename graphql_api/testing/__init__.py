"""The testing kit for plugin authors (and the core's own tests), loaded by pytest itself
through the ``pytest11`` entry point once graphql-api is installed. Every helper the tests
share lives here, so that the core's tests and the plugins' tests set up data one way.

Fixtures:

- ``database_url``: a migrated, empty database for the session, on SQLite and, when
  ``GRAPHQL_API_TEST_DATABASE_URL`` is set, on PostgreSQL too (its own fresh database);
- ``app``: the application with the installed plugins; ``app_factory(plugins=[...])`` one
  with exactly the given plugins; every test starts from empty tables;
- ``admin``, ``client``: a user with a token, and a GraphQL client acting as that user;
  ``make_user(app, name, email)`` and ``GraphQLClient(http, token)`` for other users;
- ``statements``: counts the SQL statements the app sends (a ``StatementCounter``);
- ``engine``, ``sessions``: the test database without an application, for domain tests;
- ``server``: a real ``graphql-api serve`` on the test database, with the demo data and a
  user's token, one per test module; ``server_env`` the environment its commands run with,
  for more of them (``cli(server_env, "create-user", ...)``). ``serving(env)`` serves any
  environment (``log=`` a file for its log).

Documents, for the tests that look at the answer themselves: ``CREATE_GROUP``,
``UPDATE_GROUP`` and ``DELETE_GROUP`` (groups answered with ``GROUP_FIELDS``),
``GROUP_COUNT``, ``GROUP_MEMBERS``, ``GROUP_USED_BY``, ``MEMBERSHIP_PATH``, ``ADD_MEMBERS``,
``REMOVE_MEMBERS``, ``CREATE_CONTACT``, ``UPDATE_CONTACT``, ``CREATE_EMAIL_TEMPLATE``.

Setting up data through the API, each call required to succeed: ``new_group``,
``new_group_id``, ``new_static_group_id``, ``new_contact_id``, ``new_contact_ids``,
``new_template_id``, ``add_members``, ``remove_members``; ``first_user_id`` for a
``responsibleId``. Checking: ``database_rows(app)`` (every committed row of every table, to
compare), ``unchanged(app)`` (a block that must change no row), ``refused(app, client,
mutation, variables)`` (a mutation refused, no row changed), ``member_names``,
``check_role_plugin``, ``undescribed(app.state.schema)`` (schema parts without a description).
``deliver_all(app)`` delivers what the outbox holds; ``make_worker(app)`` gives a worker to
run by hand.

The fixtures are async: set ``asyncio_mode = "auto"`` in your pytest configuration.
``GRAPHQL_API_TEST_DATABASE_PREFIX`` names the PostgreSQL test databases."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import IO, Any

import httpx
import pytest
from graphql import GraphQLEnumType, is_specified_scalar_type
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import make_url

from graphql_api.kernel.access import SYSTEM
from graphql_api.kernel.db import create_engine, create_sessionmaker
from graphql_api.migrations.runner import upgrade
from graphql_api.notifications.worker import Worker
from graphql_api.settings import Settings
from graphql_api.users.accounts import create_user
from graphql_api.users.staff_roles import role_named
from graphql_api.web.app import create_app, load_plugins

POSTGRES_URL = os.environ.get("GRAPHQL_API_TEST_DATABASE_URL")
DATABASE_PREFIX = os.environ.get("GRAPHQL_API_TEST_DATABASE_PREFIX", "graphql_api_test")
"""Each run's PostgreSQL database is ``<prefix>_<random>``, created and dropped by the kit."""


@pytest.fixture(
    scope="session",
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                not POSTGRES_URL,
                reason="set GRAPHQL_API_TEST_DATABASE_URL (postgresql+asyncpg://...) to run "
                "the suite on PostgreSQL too",
            ),
        ),
    ],
)
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A migrated, empty database of one backend, for the whole session."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        await _migrate(url)
        yield url
        return
    assert POSTGRES_URL is not None
    server = make_url(POSTGRES_URL)
    name = f"{DATABASE_PREFIX}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        await _migrate(url)
        yield url
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _migrate(url: str) -> None:
    """The core's migrations and those of every installed plugin, as `graphql-api migrate`."""
    engine = create_engine(url)
    await upgrade(engine, load_plugins(Settings()).migrations())
    await engine.dispose()


@pytest.fixture
async def app_factory(database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Makes applications on the test database: ``app_factory(plugins=[...])``."""
    made: list[Any] = []

    def make(plugins: Sequence[object] | None = None, **settings: Any) -> Any:
        # A checked token is trusted for the whole test, so whether a request pays for the
        # token check never depends on how fast the machine is; tests of the cache's
        # lifetime set their own.
        settings.setdefault("token_cache_seconds", 3600)
        application = create_app(Settings(database_url=database_url, **settings), plugins)
        made.append(application)
        return application

    yield make
    if made:
        await empty_tables(made[0].state.engine)
    for application in made:
        await application.state.engine.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[Any]:
    """An engine on the test database without an application, for tests of the domain
    itself; its tables are emptied afterwards."""
    engine = create_engine(database_url)
    yield engine
    await empty_tables(engine)
    await engine.dispose()


@pytest.fixture
def sessions(engine: Any) -> Any:
    """Sessions on ``engine`` with the core's rules (no plugins), for domain tests."""
    return create_sessionmaker(engine)


@pytest.fixture
async def app(app_factory: Callable[..., Any]) -> Any:
    """The application with the installed plugins, on emptied tables."""
    return app_factory()


def _tables(sync: Any) -> dict[str, list[str]]:
    """Every table but Alembic's, plugins' tables included, by name: its primary key's
    columns."""
    inspector = inspect(sync)
    return {
        name: inspector.get_pk_constraint(name)["constrained_columns"]
        for name in sorted(inspector.get_table_names())
        if not name.startswith("alembic_version")
    }


async def empty_tables(engine: Any) -> None:
    """Delete every row of every table but Alembic's, plugins' tables included; the
    built-in staff roles, which the migrations write, stay."""
    async with engine.begin() as connection:
        names = [name for name in await connection.run_sync(_tables) if name != "staff_roles"]
        if engine.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            # References are checked at commit, when every table is empty.
            await connection.execute(text("PRAGMA defer_foreign_keys = ON"))
            for name in names:
                await connection.execute(text(f'DELETE FROM "{name}"'))
            # Ids start again at 1, as RESTART IDENTITY makes them on PostgreSQL.
            await connection.execute(text("DELETE FROM sqlite_sequence"))
        await connection.execute(text("DELETE FROM staff_roles WHERE NOT built_in"))


CLI = [sys.executable, "-m", "graphql_api.cli"]


def cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``graphql-api ARGS`` in the environment ``env``, its output captured, as an operator
    runs it."""
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(
    env: Mapping[str, str], *arguments: str, log: IO[str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`graphql-api serve` (with more ``arguments``) on a free port, until the block ends:
    its URL and process. Its log goes to the file ``log``, or else to the process's stderr,
    to read once the block is over; a server that logs more than a pipe holds (64 KiB)
    stops until it is read, so a long or loud run gives a file."""
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), *arguments],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log or subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server_env(database_url: str) -> dict[str, str]:
    """The environment of `graphql-api` commands on the test database."""
    return {**os.environ, "GRAPHQL_API_DATABASE_URL": database_url, "GRAPHQL_API_DEV_MODE": "false"}


def new_token(env: Mapping[str, str]) -> str:
    """The token of a new user "Test" (a manager), made with `graphql-api create-user`."""
    made = cli(env, "create-user", "--name", "Test", "--email", "t@example.coop")
    assert made.returncode == 0, made.stderr
    return made.stdout.split()[-1]


@pytest.fixture(scope="module")
async def _emptied_after_module(database_url: str) -> AsyncIterator[None]:
    yield
    engine = create_engine(database_url)
    await empty_tables(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
def server(server_env: dict[str, str], _emptied_after_module: None) -> Iterator[tuple[str, str]]:
    """`graphql-api serve` on a free port and the test database, with the demo data and
    the token of a user "Test": (URL, token). One server serves a test module (starting
    one takes seconds), so its tests share its data; the tables are emptied after them."""
    seeded = cli(server_env, "seed", "--demo")
    assert seeded.returncode == 0, seeded.stderr
    token = new_token(server_env)
    with serving(server_env) as (url, _):
        yield url, token


class GraphQLClient:
    """Sends real GraphQL requests over ASGI, as the user whose token it holds."""

    def __init__(self, http: httpx.AsyncClient, token: str | None, path: str = "/graphql") -> None:
        self.http = http
        self.token = token
        self.path = path
        """``/graphql`` for staff, ``/portal/graphql`` for a contact's portal session."""

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
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


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def make_user(
    app: Any, name: str, email: str, role: str = "manager", admin: bool = False
) -> tuple[int, str]:
    """A user of staff role ``role`` (``admin=True``: the admin role) straight in the
    database, with a token: (user id, token)."""
    async with app.state.sessions() as session, session.begin():
        staff_role = await role_named(session, "admin" if admin else role)
        assert staff_role is not None, f"no staff role {role!r}"
        values = {"name": name, "email": email, "role_id": staff_role.id}
        user, token = await create_user(session, SYSTEM, values)
        return user.id, token


@pytest.fixture
async def admin(app: Any) -> tuple[int, str]:
    return await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)


@pytest.fixture
async def client(http: httpx.AsyncClient, admin: tuple[int, str]) -> GraphQLClient:
    """A client acting as the admin user, whose token the app has checked already: the
    statements of its requests are their own work."""
    client = GraphQLClient(http, admin[1])
    await client.data("{ me { permissions } }")
    return client


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


@pytest.fixture
def statements(app: Any) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    sync_engine = app.state.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", counter)
    yield counter
    event.remove(sync_engine, "before_cursor_execute", counter)


# The GraphQL documents several tests send, each written once. Their variables are named
# after the arguments they fill: ``input``, ``id``, ``groupId``, ``contactIds``, ``contactId``.

GROUP_FIELDS = """
  id name description kind startDate endDate showOnPortal showOnContact editableOnPortal
  emailOnNewMember newMemberEmailTemplate { id name } neighbourhoodRole { key }
  closed responsible { id name } createdBy { id name } createdAt updatedAt memberCount
"""
CREATE_GROUP = f"""
mutation($input: CreateGroupInput!) {{
  createGroup(input: $input) {{ group {{ {GROUP_FIELDS} }} errors {{ field code message }} }}
}}"""
UPDATE_GROUP = f"""
mutation($id: ID!, $input: UpdateGroupInput!) {{
  updateGroup(id: $id, input: $input) {{
    group {{ {GROUP_FIELDS} }} errors {{ field code message }}
  }}
}}"""
DELETE_GROUP = (
    "mutation($id: ID!) { deleteGroup(id: $id) { deletedId errors { field code message } } }"
)
GROUP_COUNT = "{ groups { totalCount } }"
GROUP_MEMBERS = """query($id: ID!) { group(id: $id) {
  memberCount members(first: 100) { totalCount nodes { lastName } } } }"""
GROUP_USED_BY = "query($id: ID!) { group(id: $id) { usedBy { name } } }"
MEMBERSHIP_PATH = """query($id: ID!, $contactId: ID!) {
  group(id: $id) { membershipPath(contactId: $contactId) { name } } }"""
ADD_MEMBERS = """
mutation($groupId: ID!, $contactIds: [ID!]!) {
  addGroupMembers(groupId: $groupId, contactIds: $contactIds) {
    group { memberCount }
    memberships { source memberSince contact { displayName } addedBy { name } group { name } }
    changedCount
    errors { field code message }
  }
}"""
REMOVE_MEMBERS = """
mutation($groupId: ID!, $contactIds: [ID!]!) {
  removeGroupMembers(groupId: $groupId, contactIds: $contactIds) {
    group { memberCount } changedCount errors { field code message }
  }
}"""
CREATE_CONTACT = """
mutation($input: ContactInput!) {
  createContact(input: $input) {
    contact { id kind displayName firstName lastName organisationName email phone street
              postalCode city createdAt }
    errors { field code message }
  }
}"""
UPDATE_CONTACT = """
mutation($id: ID!, $input: ContactInput!) {
  updateContact(id: $id, input: $input) {
    contact { displayName email city } errors { field code message }
  }
}"""
CREATE_EMAIL_TEMPLATE = """
mutation($input: EmailTemplateInput!) {
  createEmailTemplate(input: $input) {
    emailTemplate { id name subject body } errors { field code }
  }
}"""


async def new_group(client: GraphQLClient, **values: Any) -> dict[str, Any]:
    """Create a group from ``CreateGroupInput`` values (it must succeed); the group, with
    ``GROUP_FIELDS``, as the mutation answered."""
    data = await client.data(CREATE_GROUP, {"input": values})
    payload = data["createGroup"]
    assert payload["errors"] == [], payload["errors"]
    return payload["group"]


async def new_group_id(client: GraphQLClient, **values: Any) -> str:
    """Create a group from ``CreateGroupInput`` values (it must succeed); its id."""
    return (await new_group(client, **values))["id"]


async def new_static_group_id(client: GraphQLClient, name: str, contact_ids: list[str]) -> str:
    """Create a static group with these members (maybe none); its id."""
    group_id = await new_group_id(client, name=name)
    if contact_ids:
        await add_members(client, group_id, contact_ids)
    return group_id


async def new_contact_id(client: GraphQLClient, **values: Any) -> str:
    """Create a contact from ``ContactInput`` values (it must succeed); its id."""
    data = await client.data(CREATE_CONTACT, {"input": values})
    payload = data["createContact"]
    assert payload["errors"] == [], payload["errors"]
    return payload["contact"]["id"]


async def new_contact_ids(client: GraphQLClient, *last_names: str, **values: Any) -> list[str]:
    """Create one person per last name, each also with the ``ContactInput`` ``values``; their
    ids, in the same order."""
    return [await new_contact_id(client, lastName=name, **values) for name in last_names]


async def new_template_id(
    client: GraphQLClient,
    name: str = "Welkom",
    subject: str = "Welkom",
    body: str = "Beste {{ contact.firstName }}",
) -> str:
    """Create an e-mail template (it must succeed), e.g. for ``newMemberEmailTemplateId``;
    its id."""
    data = await client.data(
        CREATE_EMAIL_TEMPLATE, {"input": {"name": name, "subject": subject, "body": body}}
    )
    payload = data["createEmailTemplate"]
    assert payload["errors"] == [], payload["errors"]
    return payload["emailTemplate"]["id"]


async def first_user_id(client: GraphQLClient) -> str:
    """The id of the first user, in a test's fresh database the acting admin: a value for
    ``responsibleId``."""
    return (await client.data("{ users { id } }"))["users"][0]["id"]


async def add_members(
    client: GraphQLClient, group_id: str, contact_ids: list[str]
) -> dict[str, Any]:
    """Add contacts to a static group (it must succeed); the ``addGroupMembers`` payload.
    Send ``ADD_MEMBERS`` yourself to see a refusal."""
    return await _changed_members(client, ADD_MEMBERS, group_id, contact_ids)


async def remove_members(
    client: GraphQLClient, group_id: str, contact_ids: list[str]
) -> dict[str, Any]:
    """Remove contacts from a static group (it must succeed); the ``removeGroupMembers``
    payload. Send ``REMOVE_MEMBERS`` yourself to see a refusal."""
    return await _changed_members(client, REMOVE_MEMBERS, group_id, contact_ids)


async def _changed_members(
    client: GraphQLClient, mutation: str, group_id: str, contact_ids: list[str]
) -> dict[str, Any]:
    """Send ``ADD_MEMBERS`` or ``REMOVE_MEMBERS``, which answer alike; the payload, which
    must have no errors."""
    data = await client.data(mutation, {"groupId": group_id, "contactIds": contact_ids})
    payload = next(iter(data.values()))
    assert payload["errors"] == [], payload["errors"]
    return payload


async def member_names(client: GraphQLClient, group_id: str) -> list[str]:
    """The last names of a group's members, in the API's order, once ``memberCount`` and the
    member list are checked to agree."""
    group = (await client.data(GROUP_MEMBERS, {"id": group_id}))["group"]
    names = [node["lastName"] for node in group["members"]["nodes"]]
    assert group["memberCount"] == group["members"]["totalCount"] == len(names)
    return names


async def database_rows(app: Any) -> dict[str, list[dict[str, Any]]]:
    """What the app has committed: every row of every table but Alembic's, plugins' tables
    included, read through the app's own engine. Tables by name, each table's rows (column
    name to value) by primary key, so two snapshots are equal exactly when no row was
    added, removed or changed."""
    async with app.state.engine.connect() as connection:
        snapshot = {}
        for name, key in (await connection.run_sync(_tables)).items():
            columns = ", ".join(f'"{column}"' for column in key)
            order = f" ORDER BY {columns}" if key else ""
            result = await connection.execute(text(f'SELECT * FROM "{name}"{order}'))
            rows = [_without_bookkeeping(name, dict(row)) for row in result.mappings()]
            snapshot[name] = rows if key else sorted(rows, key=repr)
        return snapshot


def _without_bookkeeping(table: str, row: dict[str, Any]) -> dict[str, Any]:
    # Sending a request notes when its token was last used; that changes no data.
    if table == "api_tokens":
        row.pop("last_used_at", None)
    return row


@contextlib.asynccontextmanager
async def unchanged(app: Any) -> AsyncIterator[None]:
    """A block that must leave the database as it found it: ``database_rows`` before and
    after are equal (a group with all its settings, its links, memberships, history, the
    outbox, users, plugins' tables)."""
    before = await database_rows(app)
    yield
    assert await database_rows(app) == before, "the database changed"


async def refused(
    app: Any, client: GraphQLClient, mutation: str, variables: dict[str, Any]
) -> list[dict[str, Any]]:
    """Run a mutation that must be refused (its payload has errors) and change no row of
    the database (``unchanged``); its errors."""
    async with unchanged(app):
        data = await client.data(mutation, variables)
        payload = next(iter(data.values()))
        assert payload["errors"], f"not refused: {payload}"
    return payload["errors"]


async def deliver_all(app: Any) -> int:
    """Deliver everything the outbox holds for ``app``'s plugins, as the service's worker
    would; how many deliveries were handled."""
    return await make_worker(app).run_until_idle()


def undescribed(schema: Any) -> list[str]:
    """The types, fields, arguments and enum values of a Strawberry schema without a
    description: the core has none, so a plugin's test can
    ``assert undescribed(app.state.schema) == []``."""
    schema = schema._schema
    missing = []
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__") or is_specified_scalar_type(graphql_type):
            continue
        if not graphql_type.description:
            missing.append(name)
        if isinstance(graphql_type, GraphQLEnumType):
            missing += [
                f"{name}.{v}" for v, value in graphql_type.values.items() if not value.description
            ]
        for field_name, field in getattr(graphql_type, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for argument_name, argument in getattr(field, "args", {}).items():
                if not argument.description:
                    missing.append(f"{name}.{field_name}({argument_name})")
    return missing


def make_worker(app: Any, **settings: Any) -> Worker:
    """An outbox worker for ``app``, its settings overridden by ``settings``; tests run it
    with ``run_once`` or ``run_until_idle`` instead of the service's loop."""
    return Worker(
        app.state.sessions, app.state.plugins, app.state.settings.model_copy(update=settings)
    )


async def check_role_plugin(
    client: GraphQLClient, role: str, label_en: str, holders_field: str, flag_field: str
) -> None:
    """What every ``RolePlugin`` promises: the role is registered, a member of a group
    with the role is listed in ``holders_field`` and flagged in ``flag_field``, and a
    contact outside is neither."""
    roles = await client.data('{ roles { key label(locale: "en") } }')
    assert {"key": role, "label": label_en} in roles["roles"]
    group = await new_group_id(client, name=f"Groep {role}", neighbourhoodRole=role)
    holder, other = await new_contact_ids(client, "Houder", "Ander")
    assert (await add_members(client, group, [holder]))["changedCount"] == 1
    data = await client.data(
        f"query($h: ID!, $o: ID!) {{ {holders_field} {{ totalCount nodes {{ lastName }} }} "
        f"h: contact(id: $h) {{ {flag_field} }} o: contact(id: $o) {{ {flag_field} }} }}",
        {"h": holder, "o": other},
    )
    assert data[holders_field] == {"totalCount": 1, "nodes": [{"lastName": "Houder"}]}
    assert data["h"][flag_field] is True and data["o"][flag_field] is False
