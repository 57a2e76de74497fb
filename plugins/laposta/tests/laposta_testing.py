"""What the Laposta plugin's tests share besides fixtures (a module of its own: every
plugin's tests have a ``conftest``, and pytest imports only the first by that name)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from laposta_standin import LapostaStandIn
from starlette.applications import Starlette

from graphql_api.testing import GraphQLClient

WEBHOOK_SECRET = "hook-secret-0123456789"


@dataclass
class Setup:
    app: Starlette
    http: httpx.AsyncClient
    client: GraphQLClient
    standin: LapostaStandIn
