"""``/health/live`` (restart the process when it fails) and ``/health/ready`` (send it
requests only when it passes): the database answers and its schema is the newest."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from graphql_api.migrations.runner import behind

logger = logging.getLogger("graphql_api.health")

READY_TIMEOUT_SECONDS = 5.0
"""A database slower than this to answer counts as not answering."""


def health_routes(engine: AsyncEngine, newest: Mapping[str, set[str]]) -> list[Route]:
    """The probes; ``/health`` is ``/health/live``, as it has always been."""

    async def live(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> JSONResponse:
        problem = await unready(engine, newest)
        if problem is not None:
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ok"})

    return [
        Route("/health", live, methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
    ]


async def unready(engine: AsyncEngine, newest: Mapping[str, set[str]]) -> str | None:
    """Why the service cannot answer requests, or None when it can."""
    try:
        lagging = await asyncio.wait_for(behind(engine, newest), READY_TIMEOUT_SECONDS)
    except Exception as error:  # whatever stops the database from answering
        logger.warning("not ready: the database does not answer: %r", error)
        return "The database does not answer."
    if lagging:
        return (
            f"The database schema is not the newest ({', '.join(lagging)} behind); "
            "run `graphql-api migrate`."
        )
    return None
