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
from graphql_api.app import load_plugins
from graphql_api.plugin import API_VERSION, ErrorCode, GroupCreated, Problem, hookimpl
from graphql_api.settings import Settings
from graphql_api.testing import CREATE_GROUP, GraphQLClient, make_user

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


def test_built_in_plugins_import_only_the_plugin_api() -> None:
    sources = sorted((ROOT / "plugins").glob("*/graphql_api_*/**/*.py"))
    assert len(sources) >= 5
    outside = {
        str(path.relative_to(ROOT)): graphql_api_imports(path.read_text()) - ALLOWED_IMPORTS
        for path in sources
    }
    assert {path: modules for path, modules in outside.items() if modules} == {}


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


@pytest.mark.parametrize(
    ("requires_api", "error"),
    [
        (">=1,<2", None),
        (f"=={API_VERSION}", None),
        (">=2", f"requires plugin API >=2, this graphql-api offers {API_VERSION}"),
        ("<1", f"requires plugin API <1, this graphql-api offers {API_VERSION}"),
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
