"""``graphql-api new-plugin``: the distribution it writes passes ruff as written, installs,
and passes its own tests against the testing kit (on PostgreSQL too when it is set)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from graphql_api.cli import main
from graphql_api.scaffold import ScaffoldError, write_plugin

PYTHON = sys.executable


def run(*command: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command to completion; its output, or a failure showing it."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_new_plugin_passes_ruff_installs_and_passes_its_own_tests(tmp_path: Path) -> None:
    made = write_plugin("buurt_panel", tmp_path)
    assert made == tmp_path / "graphql-api-buurt-panel"
    assert sorted(str(p.relative_to(made)) for p in made.rglob("*") if p.is_file()) == [
        "README.md",
        "graphql_api_buurt_panel/__init__.py",
        "graphql_api_buurt_panel/migrations/__init__.py",
        "graphql_api_buurt_panel/migrations/buurt_panel_0001_notes.py",
        "pyproject.toml",
        "tests/test_buurt_panel.py",
    ]
    run(PYTHON, "-m", "ruff", "check", "--no-cache", ".", cwd=made)
    run(PYTHON, "-m", "ruff", "format", "--check", "--no-cache", ".", cwd=made)
    site = tmp_path / "site"
    run(PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), ".", cwd=made)
    # Installed for this run alone: its entry point is seen only through PYTHONPATH.
    env = {**os.environ, "PYTHONPATH": str(site)}
    output = run(PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=made, env=env)
    expected = 14 if os.environ.get("GRAPHQL_API_TEST_DATABASE_URL") else 7
    assert f"{expected} passed" in output, output


@pytest.mark.parametrize("name", ["Buurt", "9zon", "zon__wind", "zon-wind", "z" * 21, ""])
def test_new_plugin_refuses_a_name_that_is_no_package_name(name: str, tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="is not a plugin name"):
        write_plugin(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_does_not_overwrite_a_folder(tmp_path: Path) -> None:
    (tmp_path / "graphql-api-zon").mkdir()
    with pytest.raises(ScaffoldError, match="exists already"):
        write_plugin("zon", tmp_path)


def test_the_command_prints_the_folder_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["new-plugin", "zon", "--directory", str(tmp_path)])
    assert capsys.readouterr().out.splitlines()[-1] == str(tmp_path / "graphql-api-zon")
    with pytest.raises(SystemExit, match="exists already"):
        main(["new-plugin", "zon", "--directory", str(tmp_path)])
