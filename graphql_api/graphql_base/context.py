"""What every resolver gets: the request's database access, the acting principal, loaders."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from graphql_api.groups.filters import FilterField
from graphql_api.kernel.access import Principal
from graphql_api.kernel.repository import load_by_id
from graphql_api.notifications.feed import EventFeed
from graphql_api.roles.registry import RoleDefinition
from graphql_api.settings import Settings

T = TypeVar("T")
RowT = TypeVar("RowT")
K = TypeVar("K")
V = TypeVar("V")


class RequestDb:
    """One session per request, used by one resolver at a time.

    GraphQL resolves sibling fields concurrently, and an AsyncSession must not be used
    concurrently; the lock serialises them, DataLoaders keep the statement count low.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.engine: AsyncEngine = sessions.kw["bind"]
        """For work outside the session: compiled reads (``api.compiled``)."""
        self._sessions = sessions
        self._session: AsyncSession | None = None
        self._lock = asyncio.Lock()

    @property
    def session(self) -> AsyncSession:
        """The request's session, opened on first use: a request a plan answers needs none."""
        if self._session is None:
            self._session = self._sessions()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self._lock:
            return await work(self.session)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back on any error."""
        async with self._lock:
            if self.session.in_transaction():
                # End the read transaction earlier resolvers began; it holds no changes.
                await self.session.commit()
            async with self.session.begin():
                yield self.session

    async def release(self) -> None:
        """End the read transaction resolvers began, so a WebSocket connection, which keeps
        its session for many operations, never holds one open between them."""
        async with self._lock:
            if self._session is not None and self._session.in_transaction():
                # Writes commit in ``transaction``; what is left is a read, or a transaction
                # a failed statement broke, and a rollback ends both.
                await self.session.rollback()


LoadFn = Callable[[AsyncSession, Sequence[Any]], Awaitable[Sequence[Any]]]


@dataclass
class Context:
    """Per-request state; loaders are created on first use and live for the request."""

    db: RequestDb
    principal: Principal
    """Who is asking, with their permissions; services receive it as the actor."""
    known_permissions: Mapping[str, str]
    """Every permission of the application, by name: the core's and its plugins'."""
    settings: Settings
    roles: Mapping[str, RoleDefinition]
    filter_fields: Mapping[str, FilterField]
    """What filter conditions can test: the core's fields and the plugins'."""
    events: EventFeed
    """The committed outbox events, which subscriptions follow."""
    plugin_infos: Sequence[Any] = ()
    """What ``plugins`` reports: the manager's ``PluginInfo`` of each plugin."""
    access_changed: Callable[[], None] = lambda: None
    """Call after changing who may do what, so this process forgets the tokens it checked."""
    connection_params: dict[str, Any] | None = None
    """A WebSocket client's ``connection_init`` payload (Strawberry fills it in)."""
    _loaders: dict[LoadFn, DataLoader[Any, Any]] = field(default_factory=dict)

    def forget_loaded(self) -> None:
        """Drop every loader's cache, after a change made what it holds stale."""
        self._loaders.clear()

    def loader(self, load: LoadFn) -> DataLoader[Any, Any]:
        """The request's DataLoader for ``load(session, keys) -> values in key order``."""
        existing = self._loaders.get(load)
        if existing is None:

            async def batch(keys: list[Any]) -> Sequence[Any]:
                return await self.db.run(lambda session: load(session, keys))

            existing = self._loaders[load] = DataLoader(load_fn=batch)
        return existing

    async def row(self, model: type[RowT], pk: int | None) -> RowT | None:
        """The ``model`` row with id ``pk``, batched with every other row of it asked for;
        None for a missing row or a None ``pk`` (an empty reference)."""
        if pk is None:
            return None
        return await self.loader(load_by_id(model)).load(pk)  # type: ignore[type-var]


Info = StrawberryInfo[Context, None]
