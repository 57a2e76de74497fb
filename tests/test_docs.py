"""docs/plugins.md is executed: its Python examples run, the hook reference's examples
together are a plugin that loads, its GraphQL runs against an app with that plugin, and
each documented hook's signature is its hook specification's."""

import inspect
import re
import sys
import types
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Table

from graphql_api.plugin_host import hookspecs
from graphql_api.testing import GraphQLClient, make_user, new_contact_id

PLUGIN_DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
TEXT = PLUGIN_DOCS.read_text()
BEFORE_REFERENCE, REFERENCE = TEXT.split("## Hook reference", 1)


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def docs_plugin(folder: Path) -> types.ModuleType:
    """The hook reference's Python examples, run in order as one module: the ``docs``
    plugin."""
    module = types.ModuleType("docs_plugin")
    module.__file__ = str(folder / "docs_plugin.py")
    module.PLUGIN_NAME = "docs"
    # Strawberry reads a type's annotations in the namespace of its module, by name.
    sys.modules[module.__name__] = module
    for block in code_blocks(REFERENCE, "python"):
        exec(compile(block, str(PLUGIN_DOCS), "exec"), module.__dict__)
    return module


def test_the_examples_before_the_reference_run_each_on_its_own() -> None:
    blocks = code_blocks(BEFORE_REFERENCE, "python")
    assert blocks
    for block in blocks:
        exec(compile(block, str(PLUGIN_DOCS), "exec"), {"__name__": "docs_example"})


def test_the_reference_examples_make_a_plugin_with_every_hook(tmp_path: Path) -> None:
    module = docs_plugin(tmp_path)
    implemented = {
        name for name, value in vars(module).items() if hasattr(value, "graphql_api_impl")
    }
    assert implemented == set(hook_specifications())


async def test_the_graphql_examples_run_against_the_docs_plugin(
    app_factory: Any, tmp_path: Path
) -> None:
    module = docs_plugin(tmp_path)
    app = app_factory(plugins=[module])
    badges: Table = module.badges
    async with app.state.engine.begin() as connection:
        await connection.run_sync(badges.metadata.create_all)
    try:
        _, token = await make_user(app, "Anna de Vries", "anna@example.coop", admin=True)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            client = GraphQLClient(http, token)
            await new_contact_id(client, lastName="Zon", email="jan@zon.coop")
            answers = [await client.data(block) for block in code_blocks(TEXT, "graphql")]
    finally:
        async with app.state.engine.begin() as connection:
            await connection.run_sync(badges.metadata.drop_all)
    created, listed, renamed = answers
    assert created["createGroup"] == {
        "group": {"name": "Buurtteam Zuid", "shoutedName": "BUURTTEAM ZUID"},
        "errors": [],
    }
    assert listed["badges"] == [{"groupName": "Buurtteam Zuid"}]
    [docs] = [p for p in listed["plugins"] if p["name"] == "docs"]
    assert docs["error"] is None and "deliver" in docs["hooks"]
    assert listed["contacts"] == {"totalCount": 1}
    assert renamed["renameBadges"] == {"renamed": 1, "errors": []}


def hook_specifications() -> dict[str, list[str]]:
    """Each hook's name and arguments, from the hook specifications."""
    return {
        name: list(inspect.signature(function).parameters)
        for name, function in vars(hookspecs).items()
        if hasattr(function, "graphql_api_spec")
    }


def test_each_hook_is_documented_with_its_specifications_arguments() -> None:
    documented = {
        name: [a.strip() for a in arguments.split(",") if a.strip()]
        for name, arguments in re.findall(r"^### `(\w+)\((.*?)\)`", REFERENCE, re.M)
    }
    # ``settings`` is every hook's, so the reference says it once, not in each heading.
    specified = {
        name: [a for a in arguments if a != "settings"]
        for name, arguments in hook_specifications().items()
    }
    assert documented == specified
