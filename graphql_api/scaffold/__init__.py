"""``graphql-api new-plugin NAME``: a ready distribution of a plugin, one example of each
hook, a migration, and tests with the testing kit; it passes its tests and ruff as made."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from string import Template

TEMPLATE = Path(__file__).parent / "template"
PLUGIN_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


class ScaffoldError(ValueError):
    """The plugin cannot be made: a bad name, or its folder exists."""


def write_plugin(name: str, parent: Path) -> Path:
    """Write the distribution ``graphql-api-<name>`` under ``parent``; its folder."""
    if not PLUGIN_NAME.fullmatch(name) or len(name) > 20:
        raise ScaffoldError(
            f"{name!r} is not a plugin name: lower-case letters, digits and single "
            "underscores, starting with a letter, at most 20 characters"
        )
    words = name.split("_")
    values = {
        "name": name,
        "dist_name": name.replace("_", "-"),
        "package": f"graphql_api_{name}",
        "NAME": name.upper(),
        "Title": "".join(word.capitalize() for word in words),
        "camel": words[0] + "".join(word.capitalize() for word in words[1:]),
        "today": date.today().isoformat(),
    }
    target = parent / f"graphql-api-{values['dist_name']}"
    if target.exists():
        raise ScaffoldError(f"{target} exists already")
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        relative = source.relative_to(TEMPLATE).with_suffix("")
        relative = _placed(relative, values)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(Template(source.read_text()).substitute(values))
    return target


def _placed(relative: Path, values: dict[str, str]) -> Path:
    """Where a template file goes: ``package/`` is the plugin's package, ``first.py`` its
    first migration, ``test_plugin.py`` its tests."""
    parts = [values["package"] if part == "package" else part for part in relative.parts]
    renames = {
        "first.py": f"{values['name']}_0001_notes.py",
        "test_plugin.py": f"test_{values['name']}.py",
    }
    parts[-1] = renames.get(parts[-1], parts[-1])
    return Path(*parts)
