"""A third-party plugin using every kind of hook, written only against the public API."""

# Strawberry reads these resolvers' annotations at runtime: no postponed annotations here.
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import strawberry
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import (
    Change,
    ErrorCode,
    FieldType,
    FilterField,
    FilterOp,
    Group,
    GroupCreated,
    GroupUpdated,
    Info,
    Problem,
    RoleDefinition,
    SqlText,
    hookimpl,
)

__version__ = "0.1.0"

badges = Table(
    "example_badges",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("group_name", String(200), nullable=False),
)


@strawberry.type(description="A badge the example plugin hands out for each new group.")
class Badge:
    group_name: str = strawberry.field(description="The group it was made for.")


async def all_badges(info: Info) -> list[Badge]:
    rows = await info.context.db.run(
        lambda session: session.execute(select(badges.c.group_name).order_by(badges.c.id))
    )
    return [Badge(group_name=name) for (name,) in rows]


def shouted_name(root: strawberry.Parent[Group]) -> str:
    return root.name.upper()


def _compile_domain(op: FilterOp, values: list[str], sql: SqlText) -> str:
    domain = sql.bind("%@" + values[0].lower())
    return f"lower(coalesce(contacts.email, '')) LIKE {domain}"


@hookimpl
def graphql_types() -> list[type]:
    return [Badge]


@hookimpl
def query_fields() -> list[Any]:
    return [strawberry.field(resolver=all_badges, name="badges", description="Every badge.")]


@hookimpl
def group_fields() -> list[Any]:
    return [strawberry.field(resolver=shouted_name, description="The name, shouted.")]


@hookimpl
def register_roles() -> list[RoleDefinition]:
    return [RoleDefinition("buddy", {"nl": "Is maatje", "en": "Is buddy"})]


@hookimpl
def filter_fields(roles: Mapping[str, RoleDefinition]) -> list[FilterField]:
    return [FilterField("emailDomain", FieldType.TEXT, compile=_compile_domain)]


@hookimpl
def validate_change(session: AsyncSession, change: Change) -> list[Problem]:
    if isinstance(change, GroupCreated | GroupUpdated):
        group = change.group if isinstance(change, GroupCreated) else change.after
        if "forbidden" in group.name.lower():
            return [Problem(("name",), ErrorCode.INVALID, "The example plugin forbids this name.")]
    return []


@hookimpl
async def apply_change(session: AsyncSession, change: Change) -> None:
    if isinstance(change, GroupCreated):
        await session.execute(insert(badges).values(group_name=change.group.name))


@hookimpl
def migrations() -> str:
    return str(Path(__file__).parent / "migrations")


@hookimpl
def event_subscriptions() -> list[str]:
    return ["group.created"]


class ExampleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRAPHQL_API_EXAMPLE_")

    greeting: str = "hallo"


@hookimpl
def plugin_settings() -> type[BaseSettings]:
    return ExampleSettings


started: list[object] = []


@hookimpl
def startup(app: Any) -> None:
    started.append(app)
