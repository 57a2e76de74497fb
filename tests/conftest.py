"""The core's tests use the testing kit (graphql_api.testing) like any plugin's."""

from pathlib import Path

import pytest

from graphql_api.testing import GraphQLClient, StatementCounter, make_user

__all__ = ["GraphQLClient", "StatementCounter", "make_user"]


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
