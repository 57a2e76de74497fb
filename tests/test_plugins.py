"""The plugin system: discovery, every kind of hook, isolation between apps, failures."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry
from alembic import command
from sqlalchemy.engine import Connection

from graphql_api.groups.filters import FilterOp
from graphql_api.kernel.db import create_engine
from graphql_api.migrations.runner import histories, upgrade
from graphql_api.plugin import hookimpl
from graphql_api.plugin_host.contributions import PluginConflict
from graphql_api.roles.registry import RoleDefinition
from graphql_api.settings import Settings
from graphql_api.testing import (
    CREATE_GROUP,
    GraphQLClient,
    make_user,
    new_contact_id,
    new_group_id,
    refused,
)
from graphql_api.web.app import create_app, load_plugins

EXAMPLE = Path(__file__).parent / "example_plugin"
FORBIDDEN = {
    "field": ["input", "name"],
    "code": "INVALID",
    "message": "The example plugin forbids this name.",
}


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example plugins on sys.path, with the entry points their dist-info declares."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    importlib.invalidate_caches()
    yield
    for name in [m for m in sys.modules if m.startswith(("example_plugin", "broken_plugin"))]:
        del sys.modules[name]


@pytest.fixture
async def example_database(database_url: str, installed: None) -> AsyncIterator[str]:
    """The test database with the example plugin's own migration applied, then undone."""
    example = {"example": load_plugins(Settings(plugins=["example"])).migrations()["example"]}
    engine = create_engine(database_url)
    await upgrade(engine, example)
    yield database_url

    def undo(connection: Connection) -> None:
        [config] = histories(example)[1:]
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    async with engine.begin() as connection:
        await connection.run_sync(undo)
    await engine.dispose()


async def client_for(app: Any, http: httpx.AsyncClient) -> GraphQLClient:
    _, token = await make_user(app, "Plugin Tester", "tester@example.coop", admin=True)
    return GraphQLClient(http, token)


async def test_a_third_party_plugin_uses_every_hook(app_factory: Any, example_database: str):
    app = app_factory()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        client = await client_for(app, http)
        info = await client.data("{ plugins { name version hooks error subscriptions } }")
        example = next(p for p in info["plugins"] if p["name"] == "example")
        assert example["error"] is None and example["version"] == "0.1.0"
        assert example["subscriptions"] == ["group.created"]
        assert {
            "graphql_types",
            "query_fields",
            "group_fields",
            "filter_fields",
            "validate_change",
            "apply_change",
            "migrations",
            "register_roles",
            "plugin_settings",
            "startup",
            "event_subscriptions",
        } <= set(example["hooks"])

        errors = await refused(app, client, CREATE_GROUP, {"input": {"name": "Forbidden club"}})
        assert errors == [FORBIDDEN]
        created = await client.data(
            'mutation { createGroup(input: {name: "Buurt", neighbourhoodRole: "buddy"}) { group { shoutedName neighbourhoodRole { label(locale: "en") } } } }'
        )
        assert created["createGroup"]["group"] == {
            "shoutedName": "BUURT",
            "neighbourhoodRole": {"label": "Is buddy"},
        }
        assert (await client.data("{ badges { groupName } }"))["badges"] == [{"groupName": "Buurt"}]

        await new_contact_id(client, lastName="Zon", email="a@Zonnedak.nl")
        await new_contact_id(client, lastName="Wind", email="b@wind.nl")
        preview = await client.data(
            '{ contacts(filter: {condition: {field: "emailDomain", op: EQ, value: "zonnedak.nl"}}) { nodes { lastName } } }'
        )
        assert preview["contacts"]["nodes"] == [{"lastName": "Zon"}]
        offered = await client.data("{ filterFields { name label type operators } }")
        assert offered["filterFields"][-1] == {
            "name": "emailDomain",
            "label": "emailDomain",
            "type": "TEXT",
            "operators": [op.value for op in FilterOp],
        }, "a plugin's field without labels is named by its name"
    import example_plugin

    assert example_plugin.started == [], "startup runs with the lifespan, not at import"
    async with app.router.lifespan_context(app):
        assert example_plugin.started == [app]
    example_plugin.started.clear()
    assert app.state.plugins.plugin_settings["example"].greeting == "hallo"


async def test_a_change_a_plugin_refuses_changes_nothing_not_even_the_plugin_table(
    app_factory: Any, example_database: str
):
    app = app_factory()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        client = await client_for(app, http)
        await new_group_id(client, name="Buurt")
        assert (await client.data("{ badges { groupName } }"))["badges"] == [
            {"groupName": "Buurt"}
        ], "the plugin writes its table when it accepts a change"
        errors = await refused(app, client, CREATE_GROUP, {"input": {"name": "Forbidden"}})
        assert errors == [FORBIDDEN]


async def test_each_app_has_its_own_plugins(app_factory: Any, installed: None):
    import example_plugin
    import graphql_api_coach

    with_example = app_factory(plugins=[example_plugin])
    with_coach = app_factory(plugins=[graphql_api_coach.plugin])
    schemas = [a.routes[0].app.schema.as_str() for a in (with_example, with_coach)]
    assert "shoutedName" in schemas[0] and "shoutedName" not in schemas[1]
    assert "coaches" in schemas[1] and "coaches" not in schemas[0]
    assert set(with_coach.state.plugins.roles) == {"coach"}


async def test_a_plugin_importing_an_internal_module_is_told_what_to_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """A plugin written against a module that moved (``graphql_api.plugins`` became the
    plugin host): the log names the module it could not import and says what to import."""
    (tmp_path / "stale_plugin.py").write_text("from graphql_api.plugins import hookimpl\n")
    info = tmp_path / "stale_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stale-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[graphql_api]\nstale = stale_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    caplog.set_level(logging.ERROR, logger="graphql_api")
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", plugins=["stale"]))
    await app.state.engine.dispose()
    [record] = [r for r in caplog.records if "stale" in r.getMessage()]
    assert record.getMessage() == (
        "plugin 'stale' failed and is left out: it could not import graphql_api.plugins; "
        "a plugin imports only `graphql_api.plugin` of graphql-api (and `graphql_api.testing` "
        "in its tests); nothing else is promised to stay where it is (docs/plugins.md)"
    )
    sys.modules.pop("stale_plugin", None)


async def test_a_plugin_that_fails_to_import_is_reported(installed: None):
    app = create_app(
        Settings(database_url="sqlite+aiosqlite:///:memory:", plugins=["broken", "coach"])
    )
    infos = {i.name: i for i in app.state.plugins.infos}
    assert infos["broken"].error == "ImportError: No module named 'a_missing_dependency'"
    assert infos["coach"].error is None
    with pytest.raises(RuntimeError, match="broken"):
        create_app(
            Settings(
                database_url="sqlite+aiosqlite:///:memory:", plugins=["broken"], strict_plugins=True
            )
        )
    await app.state.engine.dispose()


class TwinRole:
    def __init__(self, name: str) -> None:
        self.__name__ = name

    @hookimpl
    def register_roles(self) -> list[RoleDefinition]:
        return [RoleDefinition("coach", {"nl": "Ook coach"})]


def test_conflicting_plugins_stop_startup_naming_both():
    with pytest.raises(PluginConflict, match="'coach' is contributed by both 'first' and 'second'"):
        load_plugins(Settings(), [TwinRole("first"), TwinRole("second")])


class NameThief:
    __name__ = "thief"

    @hookimpl
    def group_fields(self) -> list[Any]:
        def name(root: Any) -> str:
            return "mine"

        return [strawberry.field(resolver=name, description="Clashes with Group.name.")]


class AsyncRoles:
    __name__ = "async_roles"

    @hookimpl
    async def register_roles(self) -> list[RoleDefinition]:
        await asyncio.sleep(0)
        return [RoleDefinition("async_role", {"nl": "Is asynchroon"})]


class HalfBroken:
    """Registers a role, then fails in a later hook: it must contribute nothing at all."""

    __name__ = "half_broken"

    @hookimpl
    def register_roles(self) -> list[RoleDefinition]:
        return [RoleDefinition("half", {"nl": "Half"})]

    @hookimpl
    def contact_fields(self) -> list[Any]:
        raise RuntimeError("broken on purpose")


class WrongShape:
    __name__ = "wrong_shape"

    @hookimpl
    def register_roles(self) -> Any:
        return RoleDefinition("single", {"nl": "Geen lijst"})


def test_a_field_clashing_with_the_core_stops_startup():
    with pytest.raises(
        PluginConflict, match="group field 'name' is contributed by both 'core' and 'thief'"
    ):
        load_plugins(Settings(), [NameThief()])


async def test_async_build_time_hooks_are_awaited():
    plugins = load_plugins(Settings(), [AsyncRoles()])
    assert "async_role" in plugins.roles


def test_a_plugin_failing_in_any_hook_contributes_nothing():
    plugins = load_plugins(Settings(), [HalfBroken(), WrongShape()])
    errors = {i.name: i.error for i in plugins.infos if i.error}
    assert errors == {
        "half_broken": "RuntimeError: broken on purpose",
        "wrong_shape": "TypeError: hook 'register_roles' must return a list of RoleDefinition",
    }
    assert "half" not in plugins.roles and "single" not in plugins.roles
    with pytest.raises(RuntimeError, match="half_broken"):
        load_plugins(Settings(strict_plugins=True), [HalfBroken()])


@strawberry.type(description="Clashes with the core's Role.")
class Role:
    key: str = strawberry.field(description="A key.")


class TypeThief:
    __name__ = "type_thief"

    @hookimpl
    def graphql_types(self) -> list[type]:
        return [Role]


def test_a_type_clashing_with_the_core_stops_startup():
    from graphql_api.web.staff_schema import build_schema

    settings = Settings()
    with pytest.raises(PluginConflict, match="type_thief"):
        build_schema(settings, load_plugins(settings, [TypeThief()]).schema)


def test_a_misspelt_allowlist_name_is_reported():
    infos = {i.name: i.error for i in load_plugins(Settings(plugins=["coahc"])).infos}
    assert infos["coahc"] == "LookupError: not installed (named in GRAPHQL_API_PLUGINS)"


def test_autoload_can_be_switched_off():
    names = {i.name for i in load_plugins(Settings(disable_plugin_autoload=True)).infos}
    assert names == {"core.roles"}
    names = {i.name for i in load_plugins(Settings(plugins=["coach"])).infos}
    assert names == {"core.roles", "coach"}


def test_every_hook_has_a_reference_entry(repo_root: Path):
    from graphql_api.plugin_host import hookspecs

    docs = (repo_root / "docs" / "plugins.md").read_text()
    names = [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "graphql_api_spec")]
    assert len(names) >= 13
    missing = [n for n in names if f"### `{n}(" not in docs]
    assert missing == []


def test_the_allowlist_reads_comma_separated_names(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GRAPHQL_API_PLUGINS", "coach, projectleider")
    names = {i.name for i in load_plugins(Settings()).infos}
    assert names == {"core.roles", "coach", "projectleider"}
