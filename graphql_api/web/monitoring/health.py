"""``/health/live`` (restart the process when it fails) and ``/health/ready`` (send it
requests only when it passes): the database answers and this code can serve its schema,
the newest or one a newer release expanded (docs/upgrades.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from graphql_api.migrations.compatibility import History, SchemaState, schema_state

logger = logging.getLogger("graphql_api.health")

READY_TIMEOUT_SECONDS = 5.0
"""A database slower than this to answer counts as not answering."""

NEWEST = "newest"
AHEAD_COMPATIBLE = "ahead, compatible"


def health_routes(engine: AsyncEngine, newest: Mapping[str, History]) -> list[Route]:
    """The probes; ``/health`` is ``/health/live``, as it has always been."""

    async def live(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> JSONResponse:
        try:
            state = await asyncio.wait_for(schema_state(engine, newest), READY_TIMEOUT_SECONDS)
        except Exception as error:  # whatever stops the database from answering
            logger.warning("not ready: the database does not answer: %r", error)
            return unavailable("The database does not answer.")
        problem = unservable(state)
        if problem is not None:
            return unavailable(problem)
        return JSONResponse({"status": "ok", "schema": AHEAD_COMPATIBLE if state.ahead else NEWEST})

    return [
        Route("/health", live, methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
    ]


def unavailable(reason: str) -> JSONResponse:
    """Readiness refused, with the reason an operator acts on."""
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)


def unservable(state: SchemaState) -> str | None:
    """Why this code cannot serve the database's schema, or None when it can."""
    if state.behind:
        return (
            f"The database schema is not the newest ({', '.join(state.behind)} behind); "
            "run `graphql-api migrate`."
        )
    if state.incompatible:
        return (
            "The database schema is newer than this code and incompatible with it "
            f"({', '.join(state.incompatible)} ahead, incompatible: a migration has run "
            "that this release's code cannot serve); serve the release that migrated it."
        )
    return None
