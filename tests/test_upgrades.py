"""Upgrades without surprises (docs/upgrades.md): this release's code against a database a
newer release has migrated, and against one it has not migrated yet, on SQLite and (when
``GRAPHQL_API_TEST_DATABASE_URL`` is set) PostgreSQL.

"Previous release" here is this release's code (the working tree's), and the next release
is simulated: the release before this one predates these checks (to it any difference
counts as behind), so it cannot show a previous release serving a newer schema, and the
code of a commit taken from git would change meaning as commits are added. Each test
writes the next release's migrations (``0012`` on, declared an expand, a contract or
breaking) into a temporary folder, names it beside this release's versions in the
runner's Alembic configuration and applies it through the project's Alembic environment,
as the next release's `graphql-api migrate` would; then this release's readiness,
queries, mutations and commands, a real `graphql-api serve` among them, meet that
schema."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from graphql_api.kernel.db import create_engine
from graphql_api.migrations.compatibility import (
    History,
    UnknownCompatibility,
    compatibility,
    declared,
    schema_state,
    serving_revisions,
)
from graphql_api.migrations.runner import MIGRATIONS, alembic_config, newest_revisions, upgrade
from graphql_api.plugin import hookimpl
from graphql_api.scaffold import write_plugin
from graphql_api.settings import Settings
from graphql_api.testing import (
    BACKENDS,
    GraphQLClient,
    cli,
    create_postgresql_database,
    drop_postgresql_database,
    free_port,
    make_user,
    member_names,
    new_contact_id,
    new_static_group_id,
    serving,
)
from graphql_api.web.app import create_app, load_plugins
from graphql_api.web.monitoring.health import READY_TIMEOUT_SECONDS
from graphql_api.web.preflight import Refused, check_database

CURRENT_HEAD = "0012"
SERVING_NOW = {CURRENT_HEAD, "0011", "0010", "0009"}
"""The revisions whose code serves this release's schema: its head and the migration
before it are expands, so the code of both releases before it serves it too."""

EXPAND = """
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None
compatibility = "expand"


def upgrade() -> None:
    op.add_column("contacts", sa.Column("nickname", sa.String(100), nullable=True))
    op.create_table(
        "contact_notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("contact_notes")
    op.drop_column("contacts", "nickname")
"""
"""The next release's expand: a nullable column and a table, which this code never reads."""

BREAKING = """
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None
compatibility = "breaking"


def upgrade() -> None:
    op.alter_column("contacts", "phone", new_column_name="telephone")


def downgrade() -> None:
    op.alter_column("contacts", "telephone", new_column_name="phone")
"""
"""The next release's breaking change: a column this code reads, renamed."""


def step(revision: str, parent: str | None, kind: str | None) -> str:
    """A migration that changes nothing and declares ``kind`` (None: nothing)."""
    declaration = "" if kind is None else f"compatibility = {kind!r}"
    return f"""
revision = {revision!r}
down_revision = {parent!r}
{declaration}


def upgrade() -> None:
    pass
"""


@pytest.fixture(params=BACKENDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A new database of one backend, which this release's `graphql-api migrate` has brought
    to its newest schema (the core's and the installed plugins' migrations)."""
    name = f"graphql_api_upgrade_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / name}.sqlite3"
    else:
        url = await create_postgresql_database(name)
    engine = create_engine(url)
    try:
        await upgrade(engine, load_plugins(Settings()).migrations())
    finally:
        await engine.dispose()
    yield url
    if request.param != "sqlite":
        await drop_postgresql_database(name)


def next_release(folder: Path, *migrations: str) -> Config:
    """The runner's Alembic configuration of the core's history as the next release has
    it: this release's versions and ``migrations`` after them."""
    folder.mkdir()
    for number, migration in enumerate(migrations):
        (folder / f"next_{number}.py").write_text(migration)
    return alembic_config(os.pathsep.join([str(MIGRATIONS / "versions"), str(folder)]))


@asynccontextmanager
async def migrating(url: str, config: Config, change: str, target: str) -> AsyncIterator[None]:
    """``alembic upgrade|downgrade target`` through the project's environment, in one
    transaction on ``url``: run on entering the block, committed when it ends."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:

            def run(sync: Connection) -> None:
                config.attributes["connection"] = sync
                getattr(command, change)(config, target)

            await connection.run_sync(run)
            yield
    finally:
        await engine.dispose()


async def run_alembic(url: str, config: Config, change: str, target: str) -> None:
    async with migrating(url, config, change, target):
        pass


async def recorded(url: str) -> set[str]:
    """The core revisions whose code the database says can serve its schema."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.scalars(
                select(compatibility.c.revision).where(
                    compatibility.c.version_table == "alembic_version"
                )
            )
            return set(rows)
    finally:
        await engine.dispose()


async def core_revision(url: str) -> str:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.scalars(text("SELECT version_num FROM alembic_version"))).one()
    finally:
        await engine.dispose()


async def get_ready(url: str) -> httpx.Response:
    """``/health/ready`` of this release's application on ``url``, over ASGI."""
    app = create_app(Settings(database_url=url))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.get("/health/ready")
    finally:
        await app.state.engine.dispose()


def environment(url: str) -> dict[str, str]:
    return {**os.environ, "GRAPHQL_API_DATABASE_URL": url, "GRAPHQL_API_DEV_MODE": "false"}


def assert_refused(done: Any, *said: str) -> None:
    """Exit status 1 and one line on stderr saying each of ``said``; no traceback."""
    shown = f"{done.args[3:]}:\n{done.stderr}"
    assert done.returncode == 1, shown
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, shown
    assert all(part in done.stderr for part in said), shown


# The rule, from this release's files --------------------------------------------------


def test_each_core_migration_says_which_older_code_serves_it():
    """0003, 0005, 0007 and 0008 only add; the others drop, rename or tighten what the
    code before them used (each migration's docstring says why)."""
    script = ScriptDirectory.from_config(alembic_config())
    assert {revision.revision: declared(revision) for revision in script.walk_revisions()} == {
        "0001": "breaking",
        "0002": "breaking",
        "0003": "expand",
        "0004": "breaking",
        "0005": "expand",
        "0006": "breaking",
        "0007": "expand",
        "0008": "expand",
        "0009": "breaking",
        "0010": "expand",
        "0011": "expand",
        "0012": "expand",
    }


class Notes:
    """A plugin whose tables' history is a folder of a test's."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def migrations(self) -> str:
        return str(self.folder)


def misdeclared(revision: str, file: str) -> str:
    """The pattern of the error that names a migration declaring "expnad"."""
    return (
        rf"migration {revision} \(.*/{re.escape(file)}\) declares compatibility = 'expnad', "
        r"which is none of 'expand', 'contract', 'breaking'"
    )


def test_an_undeclared_migration_is_breaking_and_a_typo_is_refused(tmp_path: Path):
    undeclared = ScriptDirectory.from_config(
        next_release(tmp_path / "undeclared", step("0013", "0012", None))
    )
    assert declared(undeclared.get_revision("0013")) == "breaking"
    typo = next_release(tmp_path / "typo", step("0013", "0012", "expnad"))
    with pytest.raises(UnknownCompatibility, match=f"^{misdeclared('0013', 'next_0.py')}$"):
        History.of(ScriptDirectory.from_config(typo))

    # A plugin's typo stops every command before it touches the database.
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "notes_0001.py").write_text(step("notes_0001", None, "expnad"))
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'never.sqlite3'}")
    plugins = load_plugins(settings, [Notes(folder)])
    said = misdeclared("notes_0001", "notes_0001.py")
    with pytest.raises(Refused, match=f"^{said}; fix the migration \\(docs/upgrades.md\\)$"):
        check_database(settings, plugins, migrated=True)
    assert not (tmp_path / "never.sqlite3").exists()


def test_the_code_that_can_serve_a_schema_reaches_back_through_expands_and_one_contract(
    tmp_path: Path,
):
    script = ScriptDirectory.from_config(alembic_config())
    assert serving_revisions(script, {"0012"}) == {"0012", "0011", "0010", "0009"}
    assert serving_revisions(script, {"0011"}) == {"0011", "0010", "0009"}
    assert serving_revisions(script, {"0010"}) == {"0010", "0009"}
    assert serving_revisions(script, {"0008"}) == {"0008", "0007", "0006"}
    assert serving_revisions(script, {"0005"}) == {"0005", "0004"}
    assert serving_revisions(script, set()) == set()

    def next_serving(name: str, *kinds: str) -> set[str]:
        """What serves the head of a next release with migrations of ``kinds``, 0013 on."""
        revisions = [f"{13 + n:04d}" for n in range(len(kinds))]
        steps = [
            step(r, p, k)
            for r, p, k in zip(revisions, [CURRENT_HEAD, *revisions[:-1]], kinds, strict=True)
        ]
        return serving_revisions(
            ScriptDirectory.from_config(next_release(tmp_path / name, *steps)), {revisions[-1]}
        )

    # A contract leaves its parent's code serving (this release's, when it comes first).
    assert next_serving("contract first", "contract", "expand") == {"0014", "0013", "0012"}
    assert next_serving("expand first", "expand", "contract") == {"0014", "0013"}
    assert next_serving("two contracts", "contract", "contract") == {"0014", "0013"}
    assert next_serving("breaking", "expand", "breaking") == {"0014"}


# This release against its own schema, an older one and newer ones ----------------------


async def test_at_the_newest_schema_it_is_ready_and_says_so(database: str):
    assert await recorded(database) == SERVING_NOW
    ready = await get_ready(database)
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "schema": "newest"})


async def test_it_keeps_serving_while_the_next_release_expands_the_schema(
    database: str, tmp_path: Path
):
    """The rolling upgrade's middle: a running process of this release stays ready while
    the next release's `migrate` runs an expand and after it has committed; its requests
    wait for the migration's locks, then succeed. A process of this release started then
    serves too, and this release's `migrate` leaves the schema as it is."""
    config = next_release(tmp_path / "next", EXPAND)
    env = environment(database)
    made = cli(env, "create-user", "--name", "Old", "--email", "old@example.coop")
    assert made.returncode == 0, made.stderr
    headers = {"Authorization": f"Bearer {made.stdout.split()[-1]}"}
    with serving(env) as (url, _):
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            client = GraphQLClient(http, None)
            contact_id = await new_contact_id(client, lastName="Jansen", phone="0612345678")
            async with migrating(database, config, "upgrade", "head"):
                # Applied, not committed: the probe reads past it; a change of members
                # waits for the migration's lock (on contacts, or SQLite's write lock).
                ready = await asyncio.wait_for(http.get("/health/ready"), READY_TIMEOUT_SECONDS)
                assert (ready.status_code, ready.json()["schema"]) == (200, "newest")
                grouping = asyncio.create_task(new_static_group_id(client, "Buurt", [contact_id]))
                await asyncio.sleep(0.5)
                assert not grouping.done(), "the change did not overlap the migration"
            group_id = await grouping
            assert await member_names(client, group_id) == ["Jansen"]
            found = await client.data('{ contacts(search: "Jansen") { nodes { phone } } }')
            assert found["contacts"]["nodes"] == [{"phone": "0612345678"}]
            ready = await http.get("/health/ready")
            assert (ready.status_code, ready.json()["schema"]) == (200, "ahead, compatible")
    assert await core_revision(database) == "0013"
    assert await recorded(database) == {"0013", *SERVING_NOW}

    # The next release's own code finds the schema newest.
    engine = create_engine(database)
    try:
        theirs = {"alembic_version": History.of(ScriptDirectory.from_config(config))}
        state = await schema_state(engine, theirs)
    finally:
        await engine.dispose()
    assert (state.behind, state.ahead, state.incompatible) == ([], [], [])

    # A process of this release (re)started now serves, saying why in its log.
    with serving(env) as (url, process):
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            found = await GraphQLClient(http, None).data("{ contacts { totalCount } }")
            assert found["contacts"]["totalCount"] == 1
    log = process.stderr.read() if process.stderr else ""
    assert "alembic_version ahead, compatible" in log, log

    # This release's migrate has nothing to add, and leaves the newer revision alone.
    migrated = cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "alembic_version ahead, compatible" in migrated.stderr
    assert await core_revision(database) == "0013"


async def test_after_a_breaking_migration_of_the_next_release_it_stops(
    database: str, tmp_path: Path
):
    """A migration this release cannot serve: readiness fails with the reason, and no
    command of this release starts, `migrate` included."""
    await run_alembic(database, next_release(tmp_path / "next", BREAKING), "upgrade", "head")
    assert await recorded(database) == {"0013"}

    # Unready for a reason: this release's reads of contacts fail on that schema.
    app = create_app(Settings(database_url=database))
    try:
        _, token = await make_user(app, "Old", "old@example.coop")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answer = await GraphQLClient(http, token).execute("{ contacts { totalCount } }")
    finally:
        await app.state.engine.dispose()
    assert answer.get("data") is None and answer["errors"], answer

    ready = await get_ready(database)
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "reason": "The database schema is newer than this code and incompatible with it "
        "(alembic_version ahead, incompatible: a migration has run that this release's "
        "code cannot serve); serve the release that migrated it.",
    }

    env = environment(database)
    said = ("has a newer schema this release cannot serve", "alembic_version ahead, incompatible")
    assert_refused(cli(env, "serve", "--port", str(free_port())), *said)
    assert_refused(cli(env, "migrate"), *said)
    assert await core_revision(database) == "0013", "migrate changed nothing"


async def test_behind_it_is_not_ready_until_migrated(database: str):
    """A database one migration short of this release (the next release's processes meet
    this before its `migrate` has run)."""
    await run_alembic(database, alembic_config(), "downgrade", "-1")
    assert await core_revision(database) == "0011"
    # An expand: the code before it serves it too.
    assert await recorded(database) == {"0011", "0010", "0009"}

    ready = await get_ready(database)
    assert (ready.status_code, ready.json()["reason"]) == (
        503,
        "The database schema is not the newest (alembic_version behind); "
        "run `graphql-api migrate`.",
    )
    env = environment(database)
    assert_refused(
        cli(env, "serve", "--port", str(free_port())),
        "is not at the newest schema (alembic_version behind)",
        "run `graphql-api migrate` first",
    )

    migrated = cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    ready = await get_ready(database)
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "schema": "newest"})
    assert await recorded(database) == SERVING_NOW


SECOND_PLUGIN_MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "notes_0002"
down_revision = "notes_0001"
compatibility = {kind!r}


def upgrade() -> None:
    {change}
"""
"""A plugin's next release's migration: what it declares decides, as for the core's."""


@pytest.mark.parametrize(
    ("kind", "change", "standing"),
    [
        ("expand", 'op.add_column("notes_notes", sa.Column("pinned", sa.Boolean()))', "ahead"),
        ("contract", 'op.drop_index("ix_notes_notes_contact_id", "notes_notes")', "ahead"),
        (
            "breaking",
            'op.alter_column("notes_notes", "text", new_column_name="body")',
            "incompatible",
        ),
    ],
)
async def test_a_plugins_history_follows_the_same_rule(
    database: str, tmp_path: Path, kind: str, change: str, standing: str
):
    """A plugin as `graphql-api new-plugin` writes it, migrated; then its next release's
    `migrate` adds a second migration. This release of the plugin can serve the schema
    unless that migration declares itself breaking."""
    folder = write_plugin("notes", tmp_path) / "graphql_api_notes" / "migrations"
    theirs = tmp_path / "next"
    theirs.mkdir()
    for first in folder.glob("*.py"):
        (theirs / first.name).write_text(first.read_text())
    second = SECOND_PLUGIN_MIGRATION.format(kind=kind, change=change)
    (theirs / "notes_0002_next.py").write_text(second)
    ours = newest_revisions({"notes": str(folder)})
    engine = create_engine(database)
    try:
        await upgrade(engine, {"notes": str(folder)})
        assert (await schema_state(engine, ours)).servable
        table = "alembic_version_notes"
        await run_alembic(database, alembic_config(str(theirs), table), "upgrade", "head")
        state = await schema_state(engine, ours)
    finally:
        await engine.dispose()
    assert state.behind == [] and getattr(state, standing) == [table]
    assert state.servable is (standing == "ahead")
