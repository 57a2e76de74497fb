"""The core's tests use the testing kit (graphql_api.testing) like any plugin's.

Hypothesis profiles for the property tests, chosen with ``HYPOTHESIS_PROFILE`` or, when it
is unset, by ``CI``:

- ``default``: 25 random examples, for a quick local run;
- ``ci`` (when ``CI`` is set): derandomized, so every CI run tries the same examples, and
  enough of them to catch a composite that subtracts only its first excluded group;
- ``long``: many random examples, for a run on purpose
  (``HYPOTHESIS_PROFILE=long pytest tests/test_membership_properties.py``).
"""

import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import settings

# Every clean query the suite runs is also answered by its compiled plan, and the two
# answers must agree (graphql_api.graphql_base.compiled).
os.environ.setdefault("GRAPHQL_API_COMPILED_READS", "check")

hypothesis_defaults = settings.get_profile("default")  # Hypothesis' own, whatever CI says
settings.register_profile("default", hypothesis_defaults, max_examples=25)
settings.register_profile(
    "ci", hypothesis_defaults, max_examples=100, derandomize=True, print_blob=True
)
settings.register_profile("long", hypothesis_defaults, max_examples=500)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if "CI" in os.environ else "default")
)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def built_in_plugins() -> list[str]:
    """Entry-point names of the plugins under plugins/: schema.graphql is the schema with
    these, whatever else is installed beside the core."""
    root = Path(__file__).resolve().parent.parent
    return sorted(
        name
        for pyproject in root.glob("plugins/*/pyproject.toml")
        for name in tomllib.loads(pyproject.read_text())["project"]["entry-points"]["graphql_api"]
    )
