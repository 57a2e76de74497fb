"""The schema file, the migrations and the documentation stay in step with the code."""

from __future__ import annotations

import enum
import warnings
from pathlib import Path
from typing import Any

import pytest
import strawberry
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from graphql_api.graphql_base.enums import described_enum
from graphql_api.migrations.metadata import Base
from graphql_api.migrations.runner import downgrade, upgrade
from graphql_api.plugin_host.contributions import SchemaContributions
from graphql_api.portal.api.schema import build_portal_schema
from graphql_api.settings import Settings
from graphql_api.testing import undescribed
from graphql_api.web.app import load_plugins
from graphql_api.web.staff_schema import build_schema


def core_schema(built_in_plugins: list[str]) -> Any:
    """The schema as served with the built-in plugins alone: a third-party plugin installed
    beside the core changes neither this nor these tests."""
    settings = Settings(plugins=built_in_plugins)
    return build_schema(settings, load_plugins(settings).schema)


def test_schema_graphql_is_fresh(repo_root: Path, built_in_plugins: list[str]):
    exported = core_schema(built_in_plugins).as_str() + "\n"
    stored = (repo_root / "schema.graphql").read_text()
    assert stored == exported, "schema.graphql is stale: run `make schema`"


def test_portal_schema_graphql_is_fresh(repo_root: Path):
    exported = build_portal_schema(Settings()).as_str() + "\n"
    stored = (repo_root / "portal-schema.graphql").read_text()
    assert stored == exported, "portal-schema.graphql is stale: run `make schema`"


def test_every_type_field_argument_and_enum_value_is_described(
    app: Any, built_in_plugins: list[str]
):
    assert undescribed(core_schema(built_in_plugins)) == []
    assert undescribed(app.state.schema) == [], "as served, with the installed plugins"
    assert undescribed(build_portal_schema(Settings())) == []


@strawberry.enum(description="A plugin's enum with one value undescribed.")
class Tone(enum.Enum):
    SOFT = strawberry.enum_value("soft", description="Quietly.")
    LOUD = "loud"


@strawberry.type(description="A plugin's type with a field and an argument undescribed.")
class Hint:
    text: str
    tone: Tone = strawberry.field(description="How it is said.")

    @strawberry.field(description="The hint, repeated.")
    def repeated(self, times: int) -> str:
        return self.text * times


def test_undescribed_names_what_has_no_description():
    schema = build_schema(Settings(), SchemaContributions(types=[("hint", Hint)]))
    assert undescribed(schema) == ["Hint.text", "Hint.repeated(times)", "Tone.LOUD"]


def test_an_enum_value_without_a_description_stops_the_import():
    class Mood(enum.StrEnum):
        CALM = "CALM"
        CROSS = "CROSS"

    with pytest.raises(TypeError, match=r"Mood values without a description: \['CROSS'\]"):
        described_enum(Mood, "How one feels.", {Mood.CALM: "At ease."})


async def test_migrations_match_the_models(app):
    """`alembic upgrade head` on an empty database (done by the fixture) equals the models."""

    async with app.state.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


EXPRESSION_INDEXES = {"ix_contacts_email_lower"}
"""Indexes on an expression, which Alembic compares on no database but PostgreSQL (SQLite's
cannot be reflected); ``test_the_expression_indexes_exist`` checks them instead."""


def differences(connection: Connection) -> list:
    """How the database differs from the core models; plugins' own tables are theirs."""

    def core_only(obj, name, type_, reflected, compare_to) -> bool:
        if type_ == "index" and name in EXPRESSION_INDEXES:
            return False
        return not (type_ == "table" and reflected and name not in Base.metadata.tables)

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": core_only}
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        return compare_metadata(context, Base.metadata)


async def test_the_expression_indexes_exist(app):
    """What ``differences`` cannot compare: each expression index is in the database, and
    a look-up by its expression uses it."""
    async with app.state.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            found = await connection.scalars(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'contacts'")
            )
            plan = "EXPLAIN SELECT id FROM contacts WHERE lower(email) = 'a@b.nl'"
            await connection.execute(text("SET LOCAL enable_seqscan = off"))
        else:
            found = await connection.scalars(
                text("SELECT name FROM sqlite_master WHERE type = 'index'")
            )
            plan = "EXPLAIN QUERY PLAN SELECT id FROM contacts WHERE lower(email) = 'a@b.nl'"
        assert set(found) >= EXPRESSION_INDEXES
        shown = " ".join(str(row) for row in await connection.execute(text(plan)))
        assert "ix_contacts_email_lower" in shown


async def test_migrations_go_down_and_up_again(app):
    """Every migration, the plugins' included, can be undone, and redone to the same schema."""
    plugin_migrations = load_plugins(Settings()).migrations()
    engine = app.state.engine
    await downgrade(engine, plugin_migrations)
    await upgrade(engine, plugin_migrations)
    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []
