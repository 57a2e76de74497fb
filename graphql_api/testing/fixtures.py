"""The in-process fixtures: a migrated test database per backend, applications on it, and the
clients that act on them. Every test starts from empty tables."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from graphql_api.kernel.db import create_engine, create_sessionmaker
from graphql_api.migrations.runner import upgrade
from graphql_api.settings import Settings
from graphql_api.testing.clients import GraphQLClient, StatementCounter, make_user
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
async def app_factory(database_url: str) -> AsyncIterator[Callable[..., Starlette]]:
    """Makes applications on the test database: ``app_factory(plugins=[...])``."""
    made: list[Starlette] = []

    def make(plugins: Sequence[object] | None = None, **settings: Any) -> Starlette:
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
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database without an application, for tests of the domain
    itself; its tables are emptied afterwards."""
    engine = create_engine(database_url)
    yield engine
    await empty_tables(engine)
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine`` with the core's rules (no plugins), for domain tests."""
    return create_sessionmaker(engine)


@pytest.fixture
async def app(app_factory: Callable[..., Starlette]) -> Starlette:
    """The application with the installed plugins, on emptied tables."""
    return app_factory()


def table_keys(connection: Connection) -> dict[str, list[str]]:
    """Every table but Alembic's, plugins' tables included, by name: its primary key's
    columns. Found by inspection, so a plugin's tables are emptied and compared too."""
    inspector = inspect(connection)
    return {
        name: inspector.get_pk_constraint(name)["constrained_columns"]
        for name in sorted(inspector.get_table_names())
        if not name.startswith("alembic_version")
    }


async def empty_tables(engine: AsyncEngine) -> None:
    """Delete every row of every table but Alembic's, plugins' tables included; the
    built-in staff roles, which the migrations write, stay."""
    async with engine.begin() as connection:
        names = [name for name in await connection.run_sync(table_keys) if name != "staff_roles"]
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


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of ``app`` over ASGI: no server, and the test's own event loop."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def admin(app: Starlette) -> tuple[int, str]:
    """A user of the admin role, so a test meets no permission it did not ask for:
    (user id, token)."""
    return await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)


@pytest.fixture
async def client(http: httpx.AsyncClient, admin: tuple[int, str]) -> GraphQLClient:
    """A client acting as the admin user, whose token the app has checked already: the
    statements of its requests are their own work."""
    client = GraphQLClient(http, admin[1])
    await client.data("{ me { permissions } }")
    return client


@pytest.fixture
def statements(app: Starlette) -> Iterator[StatementCounter]:
    """Counts the statements ``app`` sends inside ``with statements:``, to pin how many
    statements a request costs."""
    counter = StatementCounter()
    sync_engine = app.state.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", counter)
    yield counter
    event.remove(sync_engine, "before_cursor_execute", counter)
