"""An id is never handed out twice: SQLite's tables with public ids are AUTOINCREMENT
(migration 0007, which keeps every row of a database it upgrades); PostgreSQL's sequences
never reuse one."""

from __future__ import annotations

import json
import warnings
from typing import Any

import httpx
from alembic import command
from sqlalchemy import inspect, text

from graphql_api.kernel.db import create_engine
from graphql_api.migrations.metadata import Base
from graphql_api.migrations.runner import alembic_config, histories, upgrade
from graphql_api.settings import Settings
from graphql_api.testing import (
    DELETE_GROUP,
    GraphQLClient,
    add_members,
    database_rows,
    make_user,
    new_contact_id,
    new_group_id,
    new_template_id,
)
from graphql_api.web.app import create_app, load_plugins

TABLES = {
    table.name
    for table in Base.metadata.tables.values()
    if table.dialect_options["sqlite"]["autoincrement"]
}
"""The tables the models declare AUTOINCREMENT: the migration must make every one so."""
LATER_COLUMN = "external_id"
LATER = {
    "jobs",
    "job_items",
    "export_links",
    "uploads",
    "upload_parts",
    "import_mappings",
    "import_rows",
    "mail_opt_outs",
    "job_schedules",
}
"""Tables made by migrations after 0007, AUTOINCREMENT from the start where they need it."""
UNREFERENCED = {"membership_events", "derived_memberships"}
"""Tables whose foreign keys a later migration drops (0009)."""
EXPORT = "contacts.export"
DELETE_TEMPLATE = "mutation($id: ID!) { deleteEmailTemplate(id: $id) { errors { code } } }"


async def test_a_deleted_newest_id_is_not_handed_out_again(client: GraphQLClient):
    first = await new_group_id(client, name="Eerste")
    assert (await client.data(DELETE_GROUP, {"id": first}))["deleteGroup"]["errors"] == []
    second = await new_group_id(client, name="Tweede")
    assert second != first
    template = await new_template_id(client, name="Eerste")
    assert (await client.data(DELETE_TEMPLATE, {"id": template}))["deleteEmailTemplate"][
        "errors"
    ] == []
    assert await new_template_id(client, name="Tweede") != template


async def some_of_everything(client: GraphQLClient) -> None:
    """Rows in the tables the migration rebuilds, and in those that refer to them."""
    anna, bram = (
        await new_contact_id(client, lastName="Anna", city="Zwolle"),
        await new_contact_id(client, lastName="Bram"),
    )
    static = await new_group_id(client, name="Statisch")
    await add_members(client, static, [anna, bram])
    dynamic = await new_group_id(
        client,
        name="Zwolle",
        filter={"condition": {"field": "city", "op": "EQ", "value": "Zwolle"}},
    )
    await new_group_id(client, name="Samen", composedOfIds=[static, dynamic], excludedGroupIds=[])
    template = await new_template_id(client)
    post = await new_group_id(
        client, name="Post", emailOnNewMember=True, newMemberEmailTemplateId=template
    )
    await add_members(client, post, [anna])  # an outbox event with its deliveries
    await client.data('mutation { createApiToken(input: {name: "sync"}) { errors { code } } }')


def structure(connection: Any) -> dict[str, Any]:
    """Every table's columns, keys, indexes and constraints, as SQLite reports them; not
    the primary key's name, which SQLite drops when the key is AUTOINCREMENT."""
    inspector = inspect(connection)
    with warnings.catch_warnings():
        # SQLite's expression indexes are not reflected; tests/test_schema.py checks them.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        return _structure(inspector)


def _structure(inspector: Any) -> dict[str, Any]:
    return {
        name: (
            [repr(column) for column in inspector.get_columns(name)],
            inspector.get_pk_constraint(name)["constrained_columns"],
            sorted(map(repr, inspector.get_foreign_keys(name))),
            sorted(map(repr, inspector.get_indexes(name))),
            sorted(map(repr, inspector.get_unique_constraints(name))),
            sorted(map(repr, inspector.get_check_constraints(name))),
        )
        for name in inspector.get_table_names()
        if not name.startswith("alembic_version")
    }


async def test_the_upgrade_keeps_every_row_and_constraint(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(url)
    plugin_migrations = load_plugins(Settings()).migrations()

    def to_0006(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
        for plugin in histories(plugin_migrations)[1:]:
            plugin.attributes["connection"] = connection
            command.upgrade(plugin, "head")

    async with engine.begin() as connection:
        await connection.run_sync(to_0006)
        # Today's models write a column 0006 lacks (a contact's externalId, 0011): it is
        # there while they write, and gone before the rows and the shape are read.
        await connection.exec_driver_sql(f"ALTER TABLE contacts ADD COLUMN {LATER_COLUMN}")
    app = create_app(Settings(database_url=url))
    _, token = await make_user(app, "Johannes", "j@example.coop", admin=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        client = GraphQLClient(http, token)
        await some_of_everything(client)
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f"ALTER TABLE contacts DROP COLUMN {LATER_COLUMN}")
        before = await database_rows(app)
        assert all(before[table] for table in TABLES - LATER), "a row in every rebuilt table"
        async with engine.connect() as connection:
            shape = await connection.run_sync(structure)

        await upgrade(engine, plugin_migrations)

        after = await database_rows(app)
        assert set(after) - set(before) == LATER
        # Migrations 0010 and 0011 grant the built-in manager role contacts.export and
        # contacts.import; nothing else moves.
        granted = [EXPORT, "contacts.import"]
        before["staff_roles"] = [
            {
                **role,
                "permissions": json.dumps(sorted([*json.loads(role["permissions"]), *granted])),
            }
            if role["name"] == "manager"
            else role
            for role in before["staff_roles"]
        ]
        # 0011 adds a contact's external id, empty.
        before["contacts"] = [{**row, LATER_COLUMN: None} for row in before["contacts"]]
        assert {table: after[table] for table in before} == before
        async with engine.connect() as connection:
            now = await connection.run_sync(structure)
            # 0011 adds a column to contacts, with a unique index: all else stays.
            added, _, _, now_indexes, _, _ = now["contacts"]
            columns, key, references, indexes, uniques, checks = shape["contacts"]
            shape["contacts"] = (
                columns + [c for c in added if f"'name': '{LATER_COLUMN}'" in c],
                key,
                references,
                sorted([*indexes, *(i for i in now_indexes if LATER_COLUMN in i)]),
                uniques,
                checks,
            )
            # Migration 0009 drops these tables' foreign keys, and only those.
            for table in UNREFERENCED:
                columns, key, _, indexes, uniques, checks = shape[table]
                shape[table] = (columns, key, [], indexes, uniques, checks)
            assert {table: now[table] for table in shape} == shape
            rebuilt = set(
                await connection.scalars(
                    text(
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%AUTOINCREMENT%'"
                    )
                )
            )
            # Plugins' own tables (a group mail's) come with AUTOINCREMENT from the start.
            assert rebuilt & set(Base.metadata.tables) == TABLES
            assert (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        newest = await new_group_id(client, name="Nieuwste")
        await client.data(DELETE_GROUP, {"id": newest})
        assert await new_group_id(client, name="Daarna") != newest
    await app.state.engine.dispose()
    await engine.dispose()
