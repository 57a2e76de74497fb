"""The plugin API: one public module, documented name by name, the only import plugins and
the docs' examples need; hooks checked when a plugin registers; settings as an argument."""

import ast
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

import graphql_api.plugin
from graphql_api.plugin import API_VERSION, ErrorCode, GroupCreated, Problem, hookimpl
from graphql_api.plugin_host.contributions import PluginConflict
from graphql_api.scaffold import write_plugin
from graphql_api.settings import Settings
from graphql_api.testing import CREATE_GROUP, GraphQLClient, make_user
from graphql_api.web.app import load_plugins
from graphql_api.web.staff_schema import build_schema

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DOCS = ROOT / "docs" / "plugins.md"
ALLOWED_IMPORTS = {"graphql_api.plugin", "graphql_api.testing"}


def documented_api_names() -> set[str]:
    """The names in the first column of the reference table of ``graphql_api.plugin``."""
    section = PLUGIN_DOCS.read_text().split("## The plugin API", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}


def graphql_api_imports(source: str) -> set[str]:
    """Every ``graphql_api...`` module a piece of Python imports."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return {m for m in modules if m == "graphql_api" or m.startswith("graphql_api.")}


def test_every_public_name_has_a_reference_entry_and_every_entry_a_name() -> None:
    assert documented_api_names() == set(graphql_api.plugin.__all__)


def test_every_public_name_is_importable() -> None:
    missing = [n for n in graphql_api.plugin.__all__ if not hasattr(graphql_api.plugin, n)]
    assert missing == []


def test_docs_examples_import_only_the_plugin_api() -> None:
    blocks = re.findall(r"```python\n(.*?)```", PLUGIN_DOCS.read_text(), re.S)
    assert blocks, "docs/plugins.md has no Python examples"
    imported = set().union(*(graphql_api_imports(block) for block in blocks))
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS


def test_plugins_import_only_the_plugin_api() -> None:
    """The built-in plugins, the example third-party plugin and the plugin the scaffold
    writes (its template) need nothing from graphql-api but the plugin API and the kit."""
    sources = sorted(
        [
            *(ROOT / "plugins").glob("*/graphql_api_*/**/*.py"),
            *(ROOT / "tests" / "example_plugin" / "example_plugin").glob("**/*.py"),
        ]
    )
    assert len(sources) >= 8
    outside = {
        str(path.relative_to(ROOT)): graphql_api_imports(path.read_text()) - ALLOWED_IMPORTS
        for path in sources
    }
    assert {path: modules for path, modules in outside.items() if modules} == {}


def test_the_scaffolded_plugin_imports_only_the_plugin_api(tmp_path: Path) -> None:
    made = write_plugin("zon", tmp_path)
    sources = sorted(made.glob("**/*.py"))
    assert len(sources) == 4
    imported = set().union(*(graphql_api_imports(path.read_text()) for path in sources))
    assert imported == ALLOWED_IMPORTS


class MisspeltHook:
    """A plugin whose hook name has a typo: ``register_role`` for ``register_roles``."""

    @hookimpl
    def register_role(self) -> list[Any]:
        return []


def test_a_misspelt_hook_refuses_the_plugin_naming_it_and_the_hook() -> None:
    plugins = load_plugins(Settings(), [MisspeltHook()])
    [info] = [i for i in plugins.infos if i.name == "MisspeltHook"]
    assert info.error == "UnknownHook: no such hook: register_role"
    assert "MisspeltHook" not in {name for name, _ in plugins.manager.list_name_plugin()}


def test_a_misspelt_hook_stops_a_strict_service() -> None:
    with pytest.raises(RuntimeError, match=r"plugin 'MisspeltHook' failed: .*register_role"):
        load_plugins(Settings(strict_plugins=True), [MisspeltHook()])


class Requiring:
    """A plugin that names the plugin API versions it works with."""

    def __init__(self, requires_api: str) -> None:
        self.requires_api = requires_api
        self.__name__ = f"requires {requires_api}"

    @hookimpl
    def event_subscriptions(self) -> list[str]:
        return []


PORTING = (
    " (a membership event now carries contactIds, up to 1,000 of one group, not one "
    "contactId; docs/plugins.md, 'From plugin API 1 to 2', says how to port a plugin)"
)


def test_the_plugin_api_is_version_2_1() -> None:
    assert API_VERSION == "2.1"


@pytest.mark.parametrize(
    ("requires_api", "error"),
    [
        (">=2,<3", None),
        (">=2.1,<3", None),
        (">=2", None),
        (f"=={API_VERSION}", None),
        (">=1,<2", f"requires plugin API >=1,<2, this graphql-api offers 2.1{PORTING}"),
        ("==1.0", f"requires plugin API ==1.0, this graphql-api offers 2.1{PORTING}"),
        (">=3", "requires plugin API >=3, this graphql-api offers 2.1"),
        ("<1", "requires plugin API <1, this graphql-api offers 2.1"),
        ("one or two", "requires_api 'one or two' is not a version range"),
    ],
)
def test_requires_api_admits_or_refuses_the_plugin(requires_api: str, error: str | None) -> None:
    plugins = load_plugins(Settings(), [Requiring(requires_api)])
    [info] = [i for i in plugins.infos if i.name == f"requires {requires_api}"]
    assert info.error == (f"IncompatiblePlugin: {error}" if error else None)


class ForbiddenWordSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRAPHQL_API_FORBIDDEN_")
    word: str = "verboden"


class ForbiddenWord:
    """Refuses groups whose name holds a word from its own settings."""

    __name__ = "forbidden_word"

    @hookimpl
    def plugin_settings(self) -> type[BaseSettings]:
        return ForbiddenWordSettings

    @hookimpl
    def validate_change(self, change: Any, settings: ForbiddenWordSettings) -> list[Problem]:
        if isinstance(change, GroupCreated) and settings.word in change.group.name.lower():
            return [Problem(("name",), ErrorCode.INVALID, f"No {settings.word!r}, please.")]
        return []


async def test_a_plugins_settings_reach_its_hooks_as_an_argument(
    app_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPHQL_API_FORBIDDEN_WORD", "geheim")
    app = app_factory(plugins=[ForbiddenWord()])
    _, token = await make_user(app, "Anna", "anna@example.coop")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        client = GraphQLClient(http, token)
        refused = await client.data(CREATE_GROUP, {"input": {"name": "Geheim overleg"}})
        allowed = await client.data(CREATE_GROUP, {"input": {"name": "Verboden toegang"}})
    assert refused["createGroup"]["errors"] == [
        {"field": ["input", "name"], "code": "INVALID", "message": "No 'geheim', please."}
    ]
    assert allowed["createGroup"]["errors"] == []


class Loud:
    """Owns an error code, and refuses names in capitals with it."""

    def __init__(self, name: str = "loud", codes: dict[str, str] | None = None) -> None:
        self.__name__ = name
        self.codes = (
            {"LOUD_SHOUTING": "The name is written in capitals."} if codes is None else codes
        )

    @hookimpl
    def error_codes(self) -> dict[str, str]:
        return self.codes

    @hookimpl
    def validate_change(self, change: Any) -> list[Problem]:
        if isinstance(change, GroupCreated) and change.group.name.isupper():
            return [Problem(("name",), "LOUD_SHOUTING", "Please do not shout.")]
        return []


async def create_group_as_admin(app: Any, name: str) -> dict[str, Any]:
    """The whole answer to ``createGroup(input: {name})`` from a new admin of ``app``."""
    _, token = await make_user(app, "Anna", "anna@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        client = GraphQLClient(http, token)
        answer = await client.execute(CREATE_GROUP, {"input": {"name": name}})
        answer["groupCount"] = (await client.data("{ groups { totalCount } }"))["groups"]
    return answer


async def test_a_plugin_refuses_with_its_own_error_code(app_factory: Any) -> None:
    answer = await create_group_as_admin(app_factory(plugins=[Loud()]), "BESTUUR")
    assert answer["data"]["createGroup"]["errors"] == [
        {"field": ["input", "name"], "code": "LOUD_SHOUTING", "message": "Please do not shout."}
    ]
    assert answer["groupCount"] == {"totalCount": 0}


def test_a_plugins_error_codes_join_only_its_own_apps_enum() -> None:
    with_loud = build_schema(Settings(), load_plugins(Settings(), [Loud()]).schema).as_str()
    without = build_schema(Settings(), load_plugins(Settings(), []).schema).as_str()
    assert '"""The name is written in capitals. (plugin loud)"""\n  LOUD_SHOUTING' in with_loud
    assert "LOUD_SHOUTING" not in without


def test_two_plugins_with_one_error_code_stop_startup_naming_both() -> None:
    # Prefixes can overlap: LOUD_TOO_MUCH fits both loud's prefix and loud_too's.
    first = Loud("loud", {"LOUD_TOO_MUCH": "Too much."})
    second = Loud("loud_too", {"LOUD_TOO_MUCH": "Again."})
    with pytest.raises(PluginConflict, match="'LOUD_TOO_MUCH' is contributed by both 'loud'"):
        load_plugins(Settings(), [first, second])


def test_an_error_code_without_the_plugins_prefix_refuses_the_plugin() -> None:
    plugins = load_plugins(Settings(), [Loud("quiet", {"LOUD_SHOUTING": "Not mine."})])
    [info] = [i for i in plugins.infos if i.name == "quiet"]
    assert info.error == (
        "ValueError: error codes ['LOUD_SHOUTING'] must be capitals starting with 'QUIET_'"
    )


async def test_an_undeclared_error_code_is_a_server_fault_and_changes_nothing(
    app_factory: Any,
) -> None:
    answer = await create_group_as_admin(app_factory(plugins=[Loud(codes={})]), "BESTUUR")
    assert answer["data"] is None
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["INTERNAL_SERVER_ERROR"]
    assert answer["groupCount"] == {"totalCount": 0}
