"""The testing kit for plugin authors (and the core's own tests), loaded by pytest itself
through the ``pytest11`` entry point once graphql-api is installed.

Fixtures:

- ``database_url``: a migrated, empty database for the session, on SQLite and, when
  ``GRAPHQL_API_TEST_DATABASE_URL`` is set, on PostgreSQL too (its own fresh database);
- ``app``: the application with the installed plugins; ``app_factory(plugins=[...])`` one
  with exactly the given plugins; every test starts from empty tables;
- ``admin``, ``client``: a user with a token, and a GraphQL client acting as that user;
  ``make_user(app, name, email)`` and ``GraphQLClient(http, token)`` for other users;
- ``statements``: counts the SQL statements the app sends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import make_url

from graphql_api.app import create_app, load_plugins
from graphql_api.kernel.db import create_engine, create_sessionmaker
from graphql_api.migrations.runner import upgrade
from graphql_api.settings import Settings
from graphql_api.users.service import create_user

POSTGRES_URL = os.environ.get("GRAPHQL_API_TEST_DATABASE_URL")


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
    name = f"graphql_api_test_{uuid.uuid4().hex[:12]}"
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
        application = create_app(Settings(database_url=database_url, **settings), plugins)
        made.append(application)
        return application

    yield make
    if made:
        await empty_tables(made[0].state.engine)
    for application in made:
        await application.state.engine.dispose()


@pytest.fixture
async def app(app_factory: Callable[..., Any]) -> Any:
    """The application with the installed plugins, on emptied tables."""
    return app_factory()


async def empty_tables(engine: Any) -> None:
    """Delete every row of every table but Alembic's, plugins' tables included."""
    async with engine.begin() as connection:
        names = await connection.run_sync(
            lambda sync: [
                n for n in inspect(sync).get_table_names() if not n.startswith("alembic_version")
            ]
        )
        if engine.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            # References are checked at commit, when every table is empty.
            await connection.execute(text("PRAGMA defer_foreign_keys = ON"))
            for name in names:
                await connection.execute(text(f'DELETE FROM "{name}"'))


class GraphQLClient:
    """Sends real GraphQL requests over ASGI, as the user whose token it holds."""

    def __init__(self, http: httpx.AsyncClient, token: str | None) -> None:
        self.http = http
        self.token = token

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
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


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def make_user(app: Any, name: str, email: str, admin: bool = False) -> tuple[int, str]:
    """A user straight in the database, with a token: (user id, token)."""
    async with create_sessionmaker(app.state.engine)() as session, session.begin():
        user, token = await create_user(session, name=name, email=email, admin=admin)
        return user.id, token


@pytest.fixture
async def admin(app: Any) -> tuple[int, str]:
    return await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)


@pytest.fixture
async def client(http: httpx.AsyncClient, admin: tuple[int, str]) -> GraphQLClient:
    """A client acting as the admin user."""
    return GraphQLClient(http, admin[1])


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


async def new_contact_ids(client: GraphQLClient, *last_names: str) -> list[str]:
    """Create one person per last name; their ids."""
    ids = []
    for last_name in last_names:
        data = await client.data(
            "mutation($i: ContactInput!) { createContact(input: $i) { contact { id } } }",
            {"i": {"lastName": last_name}},
        )
        ids.append(data["createContact"]["contact"]["id"])
    return ids


async def new_group_id(client: GraphQLClient, **values: Any) -> str:
    """Create a group from ``CreateGroupInput`` values (it must succeed); its id."""
    data = await client.data(
        "mutation($i: CreateGroupInput!) "
        "{ createGroup(input: $i) { group { id } errors { message } } }",
        {"i": values},
    )
    assert data["createGroup"]["errors"] == [], data["createGroup"]["errors"]
    return data["createGroup"]["group"]["id"]


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
    added = await client.data(
        "mutation($g: ID!, $c: [ID!]!) { addGroupMembers(groupId: $g, contactIds: $c) "
        "{ changedCount } }",
        {"g": group, "c": [holder]},
    )
    assert added["addGroupMembers"]["changedCount"] == 1
    data = await client.data(
        f"query($h: ID!, $o: ID!) {{ {holders_field} {{ totalCount nodes {{ lastName }} }} "
        f"h: contact(id: $h) {{ {flag_field} }} o: contact(id: $o) {{ {flag_field} }} }}",
        {"h": holder, "o": other},
    )
    assert data[holders_field] == {"totalCount": 1, "nodes": [{"lastName": "Houder"}]}
    assert data["h"][flag_field] is True and data["o"][flag_field] is False
