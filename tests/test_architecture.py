"""docs/architecture.md lists the layers that import-linter enforces: its tables are the
``layers`` and ``web`` contracts of pyproject.toml written out, so neither changes alone.

A layer of a contract is a string of packages separated by ``|`` (independent: they do not
import each other) or ``:`` (they may import each other); a table row of the docs names the
same packages in its second column and says which in its third."""

import importlib.util
import pkgutil
import re
import tomllib
from pathlib import Path

import pytest

import graphql_api
import graphql_api.web

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PYPROJECT = ROOT / "pyproject.toml"

Layer = tuple[frozenset[str], str | None]
"""The packages of one layer, and ``"|"`` (independent), ``":"`` (may import each other)
or None (a single package)."""

KINDS = {"independent": "|", "may import each other": ":", "": None}


def contract(contract_id: str) -> dict:
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    [found] = [c for c in contracts if c.get("id") == contract_id]
    return found


def contract_layers(contract_id: str) -> list[Layer]:
    """The layers of a ``layers`` contract, top to bottom, its packages named in full
    (a contract with ``containers`` names them relative to its one container)."""
    found = contract(contract_id)
    assert found["type"] == "layers"
    prefix = "".join(f"{c}." for c in found.get("containers", []))
    layers = []
    for text in found["layers"]:
        kinds = {separator for separator in "|:" if separator in text}
        assert len(kinds) <= 1, f"a layer mixes '|' and ':': {text!r}"
        kind = kinds.pop() if kinds else None
        names = [name.strip() for name in re.split(r"[|:]", text)]
        layers.append((frozenset(prefix + name for name in names), kind))
    return layers


def docs_table(heading: str) -> list[list[str]]:
    """The cells of each row of the first table after ``heading`` in docs/architecture.md
    (header and separator left out)."""
    text = ARCHITECTURE.read_text()
    assert heading in text, f"docs/architecture.md has no {heading!r}"
    rows = []
    for line in text.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break  # the table ended
    assert len(rows) > 2, f"no table after {heading!r}"
    return rows[2:]


def docs_layers(heading: str, container: str = "") -> list[Layer]:
    """The layers of the docs' table after ``heading``: the names in backquotes of its
    second column (``preflight.py`` and ``monitoring/`` as module names, inside
    ``container``), and what its third column says of them."""
    layers = []
    for row in docs_table(heading):
        assert len(row) >= 3, f"a row of the table after {heading!r} has no third cell: {row}"
        names = re.findall(r"`([\w./]+)`", row[1])
        assert names, f"a layer without packages after {heading!r}: {row}"
        modules = {container + name.removesuffix(".py").removesuffix("/") for name in names}
        assert row[2] in KINDS, f"say 'independent' or 'may import each other', not {row[2]!r}"
        kind = KINDS[row[2]]
        assert (kind is None) == (len(modules) == 1), f"{row}: one package, or a kind"
        layers.append((frozenset(modules), kind))
    return layers


def test_the_docs_list_the_layers_of_the_layers_contract() -> None:
    assert docs_layers("## The layers") == contract_layers("layers")


def test_the_docs_list_the_layers_inside_web() -> None:
    assert docs_layers("### Inside `web/`", "graphql_api.web.") == contract_layers("web")


@pytest.mark.parametrize(
    "change",
    [
        lambda layers: layers[1:],  # a layer dropped
        lambda layers: [layers[1], layers[0], *layers[2:]],  # two layers swapped
        lambda layers: [(layers[0][0] | {"graphql_api.jobs"}, ":"), *layers[1:]],  # one more
        lambda layers: [(p, ":" if k == "|" else k) for p, k in layers],  # independence lost
    ],
)
def test_a_change_on_one_side_alone_is_noticed(change) -> None:
    """The comparison sees every kind of change a layer list can make."""
    layers = contract_layers("layers")
    assert change(layers) != layers


def test_every_package_of_graphql_api_is_in_a_layer() -> None:
    """A package outside every layer would escape the contract, and the docs."""
    listed = {name for packages, _ in docs_layers("## The layers") for name in packages}
    present = {f"graphql_api.{m.name}" for m in pkgutil.iter_modules(graphql_api.__path__)}
    assert present == listed


def test_every_module_of_web_is_in_a_layer_of_web() -> None:
    listed = {n for packages, _ in docs_layers("### Inside `web/`", "") for n in packages}
    present = {m.name for m in pkgutil.iter_modules(graphql_api.web.__path__)}
    assert present == listed


def test_every_package_the_docs_name_exists() -> None:
    for packages, _ in docs_layers("## The layers"):
        for name in packages:
            assert importlib.util.find_spec(name) is not None, name
