"""The core's tests use the testing kit (graphql_api.testing) like any plugin's."""

from pathlib import Path

import pytest


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
