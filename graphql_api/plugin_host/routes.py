"""Plugins' own HTTP routes (hook ``http_routes``): each plugin's under ``/plugins/<name>``,
so no plugin can answer for a core path or another plugin's, and a transaction to write in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount

from graphql_api.kernel.writing import writing_transaction

PREFIX = "/plugins"


def plugin_mounts(routes: Mapping[str, Sequence[Any]]) -> list[BaseRoute]:
    """Each plugin's routes, mounted under ``/plugins/<plugin>``."""
    return [Mount(f"{PREFIX}/{plugin}", routes=list(own)) for plugin, own in sorted(routes.items())]


@asynccontextmanager
async def plugin_transaction(
    request: Request, *, writing: bool = True
) -> AsyncIterator[AsyncSession]:
    """One transaction of the application serving ``request``, committed when the block
    ends (with the events recorded in it), rolled back when it raises. ``writing=False``
    for one that only reads: on SQLite it then leaves the write lock to others."""
    if writing:
        async with writing_transaction(request.app.state.sessions) as session:
            yield session
        return
    async with request.app.state.sessions() as session, session.begin():
        yield session
