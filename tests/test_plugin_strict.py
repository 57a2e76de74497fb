"""Strict mode (``GRAPHQL_API_STRICT_PLUGINS``, ``graphql_api.plugin_host.strict``): core
rows are read-only to plugins' hooks, however they write them, and nothing of the change
is committed; their own tables are theirs; the core's own plugins and the plugin API's
services write as the core. Without strict mode such a write goes through (unsupported).
And the testing kit's membership check: a plugin's suite fails a test after which the
stored membership of groups differs from a fresh computation."""

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.applications import Starlette

from graphql_api.contacts.models import Contact
from graphql_api.groups.models import Group, Membership, MembershipSource
from graphql_api.kernel.db import create_engine
from graphql_api.notifications.models import Delivery
from graphql_api.plugin import (
    FieldType,
    FilterField,
    FilterOp,
    GroupCreated,
    contacts_changed,
    hookimpl,
)
from graphql_api.plugin_host.strict import CoreWriteRefused, core_service
from graphql_api.testing import (
    CREATE_GROUP,
    GraphQLClient,
    make_user,
    make_worker,
    member_names,
    membership_differences,
    new_contact_id,
    new_group_id,
    unchanged,
)
from graphql_api.web.app import CORE_PLUGINS

STIEKEM = "Stiekem"


async def write_core(how: str, session: Any, change: GroupCreated) -> None:
    """A plugin's write to a core table, one way or another."""
    group_id = change.group.id
    if how == "orm add":  # left pending, for the core's next flush
        session.add(Group(name=STIEKEM, name_key=STIEKEM.lower()))
    elif how == "orm flush":
        session.add(Group(name=STIEKEM, name_key=STIEKEM.lower()))
        await session.flush()
    elif how == "orm change":  # the core's own object, left changed
        group = await session.get(Group, group_id)
        group.description = STIEKEM
    elif how == "statement":
        await session.execute(update(Group).where(Group.id == group_id).values(description=STIEKEM))
    elif how == "text":
        await session.execute(
            text("UPDATE groups SET description = :d WHERE id = :id"),
            {"d": STIEKEM, "id": group_id},
        )
    elif how == "memberships":
        contact_id = await session.scalar(text("SELECT min(id) FROM contacts"))
        await session.execute(
            insert(Membership).values(
                group_id=group_id, contact_id=contact_id, source=MembershipSource.API
            )
        )
    else:
        raise AssertionError(how)


class Writer:
    """Writes a core table from one of its hooks when a group is created."""

    PLUGIN_NAME = "writer"

    def __init__(self, how: str, hook: str = "apply_change") -> None:
        self.how = how
        self.hook = hook

    @hookimpl
    async def validate_change(self, session: Any, change: Any) -> list[Any]:
        if self.hook == "validate_change" and isinstance(change, GroupCreated):
            await write_core(self.how, session, change)
        return []

    @hookimpl
    async def apply_change(self, session: Any, change: Any) -> None:
        if self.hook == "apply_change" and isinstance(change, GroupCreated):
            await write_core(self.how, session, change)


async def admin_client(app: Starlette, http: httpx.AsyncClient) -> GraphQLClient:
    _, token = await make_user(app, "Anna de Vries", "anna@example.coop", admin=True)
    return GraphQLClient(http, token)


def asgi(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def descriptions(app: Starlette) -> dict[str, str | None]:
    async with app.state.sessions() as session:
        return dict((await session.execute(select(Group.name, Group.description))).all())


@pytest.mark.parametrize(
    ("how", "hook", "table"),
    [
        ("orm add", "apply_change", "groups"),
        ("orm flush", "apply_change", "groups"),
        ("orm change", "apply_change", "groups"),
        ("statement", "apply_change", "groups"),
        ("text", "apply_change", "groups"),
        ("memberships", "apply_change", "memberships"),
        ("statement", "validate_change", "groups"),
    ],
)
async def test_a_plugin_writing_a_core_table_is_refused_in_strict_mode_and_nothing_is_committed(
    app_factory: Any, caplog: pytest.LogCaptureFixture, how: str, hook: str, table: str
) -> None:
    app = app_factory(plugins=[Writer(how, hook)], strict_plugins=True)
    async with asgi(app) as http:
        client = await admin_client(app, http)
        await new_contact_id(client, lastName="Zon")
        with caplog.at_level(logging.ERROR):
            async with unchanged(app):
                answer = await client.execute(CREATE_GROUP, {"input": {"name": "Buurtteam"}})
    assert answer.get("errors") or answer["data"]["createGroup"]["errors"], answer
    assert (
        f"plugin 'writer' wrote the core table '{table}' in its {hook} hook: core rows are "
        "read-only to plugins in strict mode"
    ) in caplog.text


@pytest.mark.unchecked_membership  # the memberships row leaves the group's count behind
@pytest.mark.parametrize("how", ["orm add", "statement", "memberships"])
async def test_the_same_write_goes_through_without_strict_mode(app_factory: Any, how: str) -> None:
    app = app_factory(plugins=[Writer(how)], strict_plugins=False)
    async with asgi(app) as http:
        client = await admin_client(app, http)
        await new_contact_id(client, lastName="Zon")
        await new_group_id(client, name="Buurtteam")
    written = await descriptions(app)
    if how == "orm add":
        assert STIEKEM in written
    elif how == "statement":
        assert written["Buurtteam"] == STIEKEM
    else:
        async with app.state.sessions() as session:
            assert len(list(await session.scalars(select(Membership.contact_id)))) == 1


notes = Table(
    "strict_test_notes",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("group_id", Integer, ForeignKey(Group.id, ondelete="CASCADE")),
    Column("text", String(200)),
)


class OwnBase(DeclarativeBase):
    metadata = MetaData()


class Badge(OwnBase):
    __tablename__ = "strict_test_badges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey(Group.id, ondelete="CASCADE"))


class OwnTables:
    """Writes its own tables only: a statement, and an ORM object left to the core's flush."""

    PLUGIN_NAME = "own_tables"

    @hookimpl
    async def apply_change(self, session: Any, change: Any) -> None:
        if isinstance(change, GroupCreated):
            await session.execute(insert(notes).values(group_id=change.group.id, text="Hallo"))
            session.add(Badge(group_id=change.group.id))


@pytest.fixture
async def own_tables_app(app_factory: Any) -> Any:
    app = app_factory(plugins=[OwnTables()], strict_plugins=True)
    async with app.state.engine.begin() as connection:
        for metadata in (notes.metadata, OwnBase.metadata):
            await connection.run_sync(metadata.create_all)
    yield app
    async with app.state.engine.begin() as connection:
        for metadata in (notes.metadata, OwnBase.metadata):
            await connection.run_sync(metadata.drop_all)


async def test_a_plugin_writing_its_own_tables_is_fine_in_strict_mode(own_tables_app: Any) -> None:
    app = own_tables_app
    async with asgi(app) as http:
        client = await admin_client(app, http)
        group_id = await new_group_id(client, name="Buurtteam")
    async with app.state.sessions() as session:
        assert list(await session.scalars(select(notes.c.text))) == ["Hallo"]
        assert len(list(await session.scalars(select(Badge.id)))) == 1
    assert group_id


@core_service
async def describe(session: Any, group_id: int, description: str) -> None:
    """A service of the plugin API that writes a core row on a plugin's behalf."""
    await session.execute(update(Group).where(Group.id == group_id).values(description=description))


class ServiceUser:
    """Changes a core row through a service; ``leave_pending``: after adding a core row
    itself, which the service's flush would write."""

    PLUGIN_NAME = "service_user"

    def __init__(self, leave_pending: bool = False) -> None:
        self.leave_pending = leave_pending

    @hookimpl
    async def apply_change(self, session: Any, change: Any) -> None:
        if isinstance(change, GroupCreated):
            if self.leave_pending:
                session.add(Group(name=STIEKEM, name_key=STIEKEM.lower()))
            await describe(session, change.group.id, "Via de dienst")


async def test_a_service_of_the_plugin_api_writes_core_rows_as_the_core(app_factory: Any) -> None:
    app = app_factory(plugins=[ServiceUser()], strict_plugins=True)
    async with asgi(app) as http:
        client = await admin_client(app, http)
        await new_group_id(client, name="Buurtteam")
    assert await descriptions(app) == {"Buurtteam": "Via de dienst"}


async def test_a_core_row_a_plugin_left_pending_is_refused_when_it_calls_a_service(
    app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory(plugins=[ServiceUser(leave_pending=True)], strict_plugins=True)
    async with asgi(app) as http:
        client = await admin_client(app, http)
        with caplog.at_level(logging.ERROR):
            async with unchanged(app):
                await client.execute(CREATE_GROUP, {"input": {"name": "Wijkraad"}})
    assert "plugin 'service_user' wrote the core table 'groups' in its apply_change" in (
        caplog.text
    )


vips = Table(
    "strict_test_vips",
    MetaData(),
    Column("contact_id", Integer, ForeignKey(Contact.id), primary_key=True),
)


def compile_vip(op: Any, values: list[str], sql: Any) -> str:
    test = "IN" if ("YES" in values) != (op is FilterOp.NEQ) else "NOT IN"
    return f"contacts.id {test} (SELECT contact_id FROM strict_test_vips)"


class VipMarker:
    """A filter field over its own table; when a group named "Markeer" is made, every
    contact becomes a VIP, and the plugin tells the core as the reference says."""

    PLUGIN_NAME = "vip_marker"

    @hookimpl
    def filter_fields(self) -> list[FilterField]:
        return [FilterField("vip", FieldType.CHOICE, ("YES", "NO"), compile=compile_vip)]

    @hookimpl
    async def apply_change(self, session: Any, change: Any) -> None:
        if isinstance(change, GroupCreated) and change.group.name == "Markeer":
            ids = list(await session.scalars(select(Contact.id)))
            await session.execute(insert(vips), [{"contact_id": i} for i in ids])
            await contacts_changed(session, ids, fields={"vip"})


@pytest.fixture
async def vip_table(database_url: str) -> AsyncIterator[None]:
    """The plugin's table, for the test and the membership check after it."""
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(vips.metadata.create_all)
    yield
    async with engine.begin() as connection:
        await connection.run_sync(vips.metadata.drop_all)
    await engine.dispose()


async def test_contacts_changed_from_a_hook_refreshes_groups_in_strict_mode(
    vip_table: None, app_factory: Any
) -> None:
    """The exported service writes derived rows, counts and history for the plugin."""
    app = app_factory(plugins=[VipMarker()], strict_plugins=True)
    async with asgi(app) as http:
        client = await admin_client(app, http)
        await new_contact_id(client, lastName="Zon")
        condition = {"field": "vip", "op": "EQ", "value": "YES"}
        group_id = await new_group_id(client, name="VIPs", filter={"condition": condition})
        assert await member_names(client, group_id) == []
        await new_group_id(client, name="Markeer")
        assert await member_names(client, group_id) == ["Zon"]
    assert await membership_differences(app) == []


async def test_the_cores_own_plugins_write_as_the_core(
    app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(CORE_PLUGINS, "core.writer", Writer("statement"))
    app = app_factory(plugins=[], strict_plugins=True)
    async with asgi(app) as http:
        client = await admin_client(app, http)
        await new_group_id(client, name="Buurtteam")
    assert await descriptions(app) == {"Buurtteam": STIEKEM}


class Hooks:
    """Writes a core table from ``startup`` (through a session of its own) or ``deliver``."""

    PLUGIN_NAME = "hooks"

    @hookimpl
    async def startup(self, app: Starlette) -> None:
        async with app.state.sessions() as session, session.begin():
            await session.execute(update(Group).values(description=STIEKEM))

    @hookimpl
    def event_subscriptions(self) -> list[str]:
        return ["group.created"]

    @hookimpl
    async def deliver(self, event: Any, session: Any) -> None:
        await session.execute(update(Group).values(description=STIEKEM))


async def test_startup_and_deliver_are_watched_too(app_factory: Any) -> None:
    app = app_factory(plugins=[Hooks()], strict_plugins=True, outbox_max_attempts=1)
    with pytest.raises(CoreWriteRefused, match="plugin 'hooks' wrote the core table 'groups'"):
        await app.state.plugins.startup(app)
    async with asgi(app) as http:
        client = await admin_client(app, http)
        await new_group_id(client, name="Buurtteam")
    assert await make_worker(app).run_until_idle() == 1
    async with app.state.sessions() as session:
        [error] = await session.scalars(select(Delivery.last_error))
    assert "plugin 'hooks' wrote the core table 'groups' in its deliver hook" in error
    assert await descriptions(app) == {"Buurtteam": None}


# The testing kit's membership check, on a tiny plugin suite run by pytest itself -------------

PLUGIN_SUITE = '''
"""A plugin whose filter field reads its own table, and a write to that table that does
not tell the core: dynamic groups testing the field are left stale."""

import os

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert

from graphql_api.plugin import FieldType, FilterField, FilterOp, decode_id, hookimpl
from graphql_api.testing import new_contact_id, new_group_id

vips = Table("strict_kit_vips", MetaData(), Column("contact_id", Integer, primary_key=True))
VIPS = {"condition": {"field": "vip", "op": "EQ", "value": "YES"}}


def compile_vip(op, values, sql):
    test = "IN" if ("YES" in values) != (op is FilterOp.NEQ) else "NOT IN"
    return f"contacts.id {test} (SELECT contact_id FROM strict_kit_vips)"


class Vip:
    PLUGIN_NAME = "vip"

    @hookimpl
    def filter_fields(self):
        return [FilterField("vip", FieldType.CHOICE, ("YES", "NO"), compile=compile_vip)]


@pytest.fixture(scope="session")
def database_url():
    return os.environ["STRICT_TEST_DATABASE_URL"]


@pytest.fixture
async def app(app_factory):
    app = app_factory(plugins=[Vip()])
    async with app.state.engine.begin() as connection:
        await connection.run_sync(vips.metadata.create_all)
    return app


async def mark_vip(app, contact_id):
    """The plugin's own write, which forgets to tell the core that contacts changed."""
    async with app.state.sessions() as session, session.begin():
        pk = decode_id(contact_id, "Contact", ["contactId"])
        await session.execute(insert(vips).values(contact_id=pk))


async def test_marked_after_the_group_was_made(app, client):
    contact_id = await new_contact_id(client, lastName="Zon")
    await new_group_id(client, name="VIPs", filter=VIPS)
    await mark_vip(app, contact_id)


async def test_marked_before_the_group_was_made(app, client):
    contact_id = await new_contact_id(client, lastName="Zon")
    await mark_vip(app, contact_id)
    await new_group_id(client, name="VIPs", filter=VIPS)


@pytest.mark.unchecked_membership
async def test_stale_on_purpose(app, client):
    await test_marked_after_the_group_was_made(app, client)
'''


@pytest.mark.parametrize("option", ["graphql_api_check_membership", "graphql_api_strict_plugins"])
async def test_the_kits_membership_check_fails_a_test_that_left_membership_stale(
    database_url: str, tmp_path: Path, option: str
) -> None:
    (tmp_path / "test_vip.py").write_text(PLUGIN_SUITE)
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [tool.pytest.ini_options]
        asyncio_mode = "auto"
        asyncio_default_fixture_loop_scope = "session"
        asyncio_default_test_loop_scope = "session"
        {option} = true
        """)
    )
    env = {**os.environ, "STRICT_TEST_DATABASE_URL": database_url}
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-W", "error"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        engine = create_engine(database_url)
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE IF EXISTS strict_kit_vips"))
        await engine.dispose()
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    # The stale test's own call passed; the check fails it at its teardown, as an error.
    assert "3 passed, 1 error" in output, output
    assert "ERROR at teardown of test_marked_after_the_group_was_made" in output, output
    assert (
        "stored group membership differs from a fresh computation after the test (did a "
        "plugin change data a group reads without telling the core?):\n  group 1: contact 1 "
        "is missing\n"
    ) in output, output
