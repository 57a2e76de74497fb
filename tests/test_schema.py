"""The schema file, the migrations and the documentation stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType
from sqlalchemy.engine import Connection

from graphql_api.api.schema import build_schema
from graphql_api.app import load_plugins
from graphql_api.migrations.metadata import Base
from graphql_api.migrations.runner import downgrade, upgrade
from graphql_api.settings import Settings


def installed_schema():
    """The schema as served with every installed plugin (the built-in ones after install)."""
    settings = Settings()
    return build_schema(settings, load_plugins(settings).schema)


def test_schema_graphql_is_fresh(repo_root: Path):
    exported = installed_schema().as_str() + "\n"
    stored = (repo_root / "schema.graphql").read_text()
    assert stored == exported, (
        "schema.graphql is stale: run `graphql-api export-schema > schema.graphql`"
    )


def test_every_type_field_and_argument_is_described():
    schema = installed_schema()._schema
    missing = []
    for name, graphql_type in schema.type_map.items():
        if name.startswith("__") or not isinstance(
            graphql_type,
            GraphQLObjectType | GraphQLInputObjectType | GraphQLInterfaceType | GraphQLEnumType,
        ):
            continue
        if not graphql_type.description:
            missing.append(name)
        if isinstance(graphql_type, GraphQLEnumType):
            continue
        for field_name, field in graphql_type.fields.items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for arg_name, arg in getattr(field, "args", {}).items():
                if not arg.description:
                    missing.append(f"{name}.{field_name}({arg_name})")
    assert missing == []


async def test_migrations_match_the_models(app):
    """`alembic upgrade head` on an empty database (done by the fixture) equals the models."""

    async with app.state.engine.connect() as connection:
        assert await connection.run_sync(differences) == []


def differences(connection: Connection) -> list:
    """How the database differs from the core models; plugins' own tables are theirs."""

    def core_only(obj, name, type_, reflected, compare_to) -> bool:
        return not (type_ == "table" and reflected and name not in Base.metadata.tables)

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": core_only}
    )
    return compare_metadata(context, Base.metadata)


async def test_migrations_go_down_and_up_again(app):
    """Every migration, the plugins' included, can be undone, and redone to the same schema."""
    plugin_migrations = load_plugins(Settings()).migrations()
    engine = app.state.engine
    await downgrade(engine, plugin_migrations)
    await upgrade(engine, plugin_migrations)
    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []
