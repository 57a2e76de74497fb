"""The in-process fixtures: a migrated test database per backend, applications on it, and the
clients that act on them. Every test starts from empty tables.

Strict mode for a suite (``pytest_addoption`` registers the options): with
``graphql_api_strict_plugins = true`` in the pytest configuration the applications
``app_factory`` makes are strict (``strict_plugins``: a plugin that fails refuses the
start, a plugin's write to a core table is refused); with ``graphql_api_check_membership =
true``, or whenever a test made a strict application, each test that passed is then
failed at teardown when the stored membership of groups (derived rows and member counts)
differs from a fresh computation, the differences listed: a plugin that changed what a
dynamic group's filter reads without telling the core is caught by its own tests. A test
that leaves membership stale on purpose is marked ``@pytest.mark.unchecked_membership``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from graphql_api.jobs.kinds import JOB_KINDS
from graphql_api.kernel.db import create_engine, create_sessionmaker
from graphql_api.migrations.compatibility import COMPATIBILITY_TABLE
from graphql_api.migrations.runner import upgrade
from graphql_api.settings import Settings
from graphql_api.testing.clients import GraphQLClient, StatementCounter, make_user
from graphql_api.web.app import create_app, job_kinds, load_plugins

POSTGRES_URL = os.environ.get("GRAPHQL_API_TEST_DATABASE_URL")
DATABASE_PREFIX = os.environ.get("GRAPHQL_API_TEST_DATABASE_PREFIX", "graphql_api_test")
"""Each run's PostgreSQL database is ``<prefix>_<random>``, created and dropped by the kit."""

CHECK_MEMBERSHIP = "graphql_api_check_membership"
STRICT_PLUGINS = "graphql_api_strict_plugins"
UNCHECKED_MEMBERSHIP = "unchecked_membership"


@dataclass
class _Made:
    """The applications a test made (``app_factory``), and the event loop they run on."""

    apps: list[Starlette] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None
    checked: bool = False


_MADE = pytest.StashKey[_Made]()
_PASSED = pytest.StashKey[bool]()
"""Whether a test's own call passed: a failed test is not checked after as well."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        CHECK_MEMBERSHIP,
        "graphql-api testing kit: after each test that made an application and passed, "
        "fail it when stored group membership differs from a fresh computation",
        type="bool",
        default=False,
    )
    parser.addini(
        STRICT_PLUGINS,
        "graphql-api testing kit: the applications app_factory makes are in strict mode "
        "(strict_plugins=True), and membership is checked after each test",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{UNCHECKED_MEMBERSHIP}: the test leaves stored group membership stale on purpose; "
        "the testing kit does not compare it with a fresh computation after the test",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """The membership check, before any fixture is torn down: a fixture that drops a
    plugin's table a dynamic group reads is torn down before ``app_factory``."""
    made = item.stash.get(_MADE, None)
    loop = made.loop if made is not None else None
    failure = None
    if (
        made is not None
        and loop is not None
        and not loop.is_closed()
        and not loop.is_running()
        and _checks_membership(item, made.apps)
    ):
        made.checked = True
        try:
            failure = loop.run_until_complete(_stale_membership(made.apps))
        except Exception as error:  # the fixtures are torn down whatever happens here
            failure = f"stored group membership could not be checked after the test: {error!r}"
    result = yield
    if failure:
        pytest.fail(failure, pytrace=False)
    return result


BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(
            not POSTGRES_URL,
            reason="set GRAPHQL_API_TEST_DATABASE_URL (postgresql+asyncpg://...) to run "
            "the suite on PostgreSQL too",
        ),
    ),
]
"""The databases a test runs on, as ``params``: SQLite always, PostgreSQL when
``GRAPHQL_API_TEST_DATABASE_URL`` is set."""


@pytest.fixture(scope="session", params=BACKENDS)
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
    name = f"{DATABASE_PREFIX}_{uuid.uuid4().hex[:12]}"
    url = await create_postgresql_database(name)
    try:
        await _migrate(url)
        yield url
    finally:
        await drop_postgresql_database(name)


async def create_postgresql_database(name: str) -> str:
    """A new, empty database ``name`` on the server of ``GRAPHQL_API_TEST_DATABASE_URL``;
    its URL."""
    await _on_the_server(f'CREATE DATABASE "{name}"')
    assert POSTGRES_URL is not None
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


async def drop_postgresql_database(name: str) -> None:
    """Drop database ``name`` of that server, with whoever is still connected to it."""
    await _on_the_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _on_the_server(statement: str) -> None:
    assert POSTGRES_URL is not None
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await admin.dispose()


async def _migrate(url: str) -> None:
    """The core's migrations and those of every installed plugin, as `graphql-api migrate`."""
    engine = create_engine(url)
    await upgrade(engine, load_plugins(Settings()).migrations())
    await engine.dispose()


@pytest.fixture
async def app_factory(
    database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Starlette]]:
    """Makes applications on the test database: ``app_factory(plugins=[...])``. Strict
    when the suite says so (``graphql_api_strict_plugins``); after a test that passed,
    membership is checked when the suite says so or an application was strict."""
    made = request.node.stash[_MADE] = _Made()
    strict = bool(request.config.getini(STRICT_PLUGINS))

    def make(plugins: Sequence[object] | None = None, **settings: Any) -> Starlette:
        # A checked token is trusted for the whole test, so whether a request pays for the
        # token check never depends on how fast the machine is; tests of the cache's
        # lifetime set their own.
        settings.setdefault("token_cache_seconds", 3600)
        if strict:
            settings.setdefault("strict_plugins", True)
        application = create_app(Settings(database_url=database_url, **settings), plugins)
        made.apps.append(application)
        if made.loop is None:
            with contextlib.suppress(RuntimeError):  # made outside the loop, by a sync test
                made.loop = asyncio.get_running_loop()
        return application

    yield make
    try:
        # Checked here only when pytest_runtest_teardown could not (no loop known).
        if made.apps and not made.checked and _checks_membership(request.node, made.apps):
            failure = await _stale_membership(made.apps)
            if failure:
                pytest.fail(failure, pytrace=False)
    finally:
        del request.node.stash[_MADE]
        if made.apps:
            await empty_tables(made.apps[0].state.engine)
        for application in made.apps:
            await application.state.engine.dispose()


def _checks_membership(node: pytest.Item, apps: Sequence[Starlette]) -> bool:
    return bool(
        apps
        and node.stash.get(_PASSED, False)
        and node.get_closest_marker(UNCHECKED_MEMBERSHIP) is None
        and (
            node.config.getini(CHECK_MEMBERSHIP)
            or any(application.state.settings.strict_plugins for application in apps)
        )
    )


async def _stale_membership(apps: Sequence[Starlette]) -> str | None:
    """Why the test fails, unless stored membership is exact under the rules (the
    plugins' filter fields) of one of the applications it made: one plugin's dynamic group
    is a broken filter to an application without that plugin."""
    # checks imports this module (table_keys), so it is imported here, not at the top.
    from graphql_api.testing.checks import membership_differences

    first: list[str] = []
    for application in apps:
        found = await membership_differences(application)
        if not found:
            return None
        first = first or found
    return (
        "stored group membership differs from a fresh computation after the test (did a "
        "plugin change data a group reads without telling the core?):\n  " + "\n  ".join(first)
    )


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
    """Sessions on ``engine`` with the core's rules (no plugins) and job kinds, for domain
    tests."""
    return create_sessionmaker(engine, {JOB_KINDS: job_kinds()})


@pytest.fixture
async def app(app_factory: Callable[..., Starlette]) -> Starlette:
    """The application with the installed plugins, on emptied tables."""
    return app_factory()


def table_keys(connection: Connection) -> dict[str, list[str]]:
    """Every table but the migrations' bookkeeping (Alembic's version tables and the
    compatibility of each revision), plugins' tables included, by name: its primary key's
    columns. Found by inspection, so a plugin's tables are emptied and compared too."""
    inspector = inspect(connection)
    return {
        name: inspector.get_pk_constraint(name)["constrained_columns"]
        for name in sorted(inspector.get_table_names())
        if not name.startswith("alembic_version") and name != COMPATIBILITY_TABLE
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
