"""The Starlette application: ``/graphql`` (staff API and GraphiQL, also over WebSocket),
``/portal/graphql`` (the customer portal), GraphiQL's files under ``/static/graphiql``, the
health probes under ``/health`` and the metrics on ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Route, WebSocketRoute

from graphql_api.auth.backend import PortalUser, TokenBackend, on_auth_error
from graphql_api.auth.middleware import PORTAL_PATH, RequestScope
from graphql_api.auth.token_cache import TokenCache
from graphql_api.contacts.imports import running as imports
from graphql_api.groups import bulk
from graphql_api.jobs import JobKind, JobKinds
from graphql_api.jobs.kinds import JOB_KINDS
from graphql_api.jobs.runner import JobRunner
from graphql_api.kernel.db import create_engine, create_sessionmaker, service_engine
from graphql_api.kernel.interruption import track_connections
from graphql_api.kernel.requests import count_statements
from graphql_api.migrations.runner import newest_revisions
from graphql_api.notifications.feed import EventFeed
from graphql_api.notifications.outbox import ON_EVENTS_COMMITTED
from graphql_api.notifications.worker import Worker
from graphql_api.plugin_host.manager import Plugins
from graphql_api.plugin_host.routes import plugin_mounts
from graphql_api.portal.api.context import PortalContext
from graphql_api.portal.api.schema import build_portal_schema
from graphql_api.roles import core_plugin
from graphql_api.settings import Settings
from graphql_api.web.body_limit import BodyLimit
from graphql_api.web.endpoint import GraphQLEndpoint
from graphql_api.web.exports import export_routes
from graphql_api.web.graphiql import GraphiQLPage, ServesGraphiQL, assets_route
from graphql_api.web.graphiql.examples import PORTAL_EXAMPLES
from graphql_api.web.guards import DatabaseUnavailable, RequestBudget
from graphql_api.web.imports import UPLOAD_PATH, import_routes
from graphql_api.web.monitoring.health import health_routes
from graphql_api.web.monitoring.metrics import Metrics, metrics_route
from graphql_api.web.monitoring.requests import RequestObserver
from graphql_api.web.request_json import decode_request_json
from graphql_api.web.staff_schema import CORE_FIELD_NAMES
from graphql_api.web.trusted_documents import TrustedDocuments, load_trusted_documents
from graphql_api.web.trusted_view import TrustedDocumentsView

logger = logging.getLogger("graphql_api")

CORE_PLUGINS = {"core.roles": core_plugin}
"""The core's own behaviour written as plugins, registered in every application by name."""

CORE_JOB_KINDS: dict[str, JobKind] = {**bulk.JOB_KINDS, **imports.JOB_KINDS}
"""The kinds of bulk jobs (taken) every application runs, by name (docs/architecture.md)."""


def job_kinds(plugins: Plugins | None = None) -> JobKinds:
    """The job kinds of one application: the core's and its plugins' (hook
    ``job_kinds``); a test registers more on ``app.state.job_kinds``."""
    return JobKinds({**CORE_JOB_KINDS, **(plugins.job_kinds if plugins else {})})


DEV_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
"""The only Host headers development mode answers: a page elsewhere cannot reach its
token-less admin through DNS rebinding."""


class PortalEndpoint(ServesGraphiQL, TrustedDocumentsView[PortalContext]):
    """The portal's own schema on ``/portal/graphql``, for contacts with a session, and
    its own GraphiQL page."""

    def __init__(self, settings: Settings, documents: TrustedDocuments) -> None:
        super().__init__(build_portal_schema(settings), graphql_ide="graphiql")
        self.documents = documents
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self.graphiql = GraphiQLPage("Customer portal", PORTAL_EXAMPLES)

    def decode_json(self, data: str | bytes) -> object:
        return decode_request_json(data)  # UTF-8, an object, not too deep: as /graphql

    async def get_context(self, request: Any, response: Any) -> PortalContext:
        user = request.user
        return PortalContext(
            db=request.state.db,
            portal=user.session if isinstance(user, PortalUser) else None,
            settings=self.settings,
            address=request.client.host if request.client else "unknown",
            today=datetime.now(self.zone).date(),
        )


def _cors(origins: Sequence[str]) -> list[Middleware]:
    """Before authentication, so a browser's preflight is answered without a token; none
    at all when no origin is allowed, since browsers then refuse by themselves."""
    if not origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            # Content-Disposition: the file name of a download (docs/export.md).
            expose_headers=["X-Request-ID", "Content-Disposition"],
            max_age=600,
        )
    ]


def load_plugins(settings: Settings, plugins: Sequence[object] | None = None) -> Plugins:
    """The plugins of one application: ``plugins`` given, exactly these; None, the
    installed ones (entry points). Their fields are checked against the core's."""
    return Plugins(settings, plugins, core_fields=CORE_FIELD_NAMES, core_plugins=CORE_PLUGINS)


def create_app(
    settings: Settings | None = None, plugins: Sequence[object] | None = None
) -> Starlette:
    """Build an independent application: its own engine, plugins, schema and settings.

    ``plugins`` given: exactly these (for tests); None: the installed ones (entry points).
    A manifest of trusted documents that cannot be used raises ``ManifestError``.
    """
    settings = settings or Settings()
    documents = load_trusted_documents(settings)
    engine = service_engine(
        settings, serving=True, statement_timeout_seconds=settings.request_timeout_seconds
    )
    track_connections(engine)
    manager = load_plugins(settings, plugins)
    # LISTEN holds its server connection for as long as it listens: not through a pooler.
    listening = (
        create_engine(settings.direct_url, pool_size=1, max_overflow=0)
        if settings.transaction_pooled
        else engine
    )
    feed = EventFeed(
        create_sessionmaker(engine), listening, poll_seconds=settings.feed_poll_seconds
    )
    kinds = job_kinds(manager)
    sessions = create_sessionmaker(
        engine,
        info={
            "rules": manager.rules(),
            "permissions": manager.permissions,
            ON_EVENTS_COMMITTED: feed.committed,
            JOB_KINDS: kinds,
        },
    )
    tokens = TokenCache(ttl=settings.token_cache_seconds)
    metrics = Metrics()
    count_statements(engine)

    @asynccontextmanager
    async def lifespan(application: Starlette) -> AsyncIterator[None]:
        if settings.dev_mode:
            logger.warning(
                "Development mode: requests without a token act as the first admin user. "
                "Never expose this to a network."
            )
        await manager.startup(application)
        stop = asyncio.Event()
        working = []
        if settings.outbox_in_process_worker and manager.subscribers:
            working.append(
                asyncio.create_task(Worker(sessions, manager, settings).run_forever(stop))
            )
        if settings.outbox_in_process_worker:
            # Bulk jobs beside the deliveries; stopped between two chunks.
            working.append(
                asyncio.create_task(
                    JobRunner(
                        sessions, kinds, settings, schedules=manager.scheduled_jobs
                    ).run_forever(stop)
                )
            )
        yield
        stop.set()
        for task in working:
            await task
        await feed.close()
        await engine.dispose()
        await listening.dispose()

    backend = TokenBackend(
        sessions,
        tokens,
        dev_mode=settings.dev_mode,
        portal_session_lifetime=timedelta(minutes=settings.portal_session_minutes),
    )
    graphql = GraphQLEndpoint(settings, manager, backend, documents, feed)
    app = Starlette(
        routes=[
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route(PORTAL_PATH, PortalEndpoint(settings, documents)),
            assets_route(),
            *health_routes(engine, newest_revisions(manager.migrations())),
            metrics_route(metrics, sessions),
            *export_routes(),
            *import_routes(),
            *plugin_mounts(manager.http_routes),
        ],
        middleware=[
            # Outermost, so every answer has its request's id, log line and metrics.
            Middleware(RequestObserver, metrics=metrics),
            *(
                [Middleware(TrustedHostMiddleware, allowed_hosts=DEV_HOSTS)]
                if settings.dev_mode
                else []
            ),
            *_cors(settings.cors_origins),
            # Before anything reads a body; inside CORS, so a browser can read the refusal.
            # Reading the body counts against the request's time budget too.
            Middleware(
                BodyLimit,
                max_bytes=settings.max_body_bytes,
                streamed={UPLOAD_PATH: settings.max_upload_bytes},
                read_seconds=min(
                    settings.body_read_timeout_seconds, settings.request_timeout_seconds
                ),
            ),
            # Around authentication, whose token check needs the database too; inside the
            # body limit, since the budget reads the body whole.
            Middleware(RequestBudget, seconds=settings.request_timeout_seconds),
            Middleware(DatabaseUnavailable),
            Middleware(AuthenticationMiddleware, backend=backend, on_error=on_auth_error),
            Middleware(RequestScope, sessions=sessions),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.plugins = manager
    app.state.schema = graphql.schema
    app.state.compiled_reads = graphql.planned.reads
    app.state.tokens = tokens
    app.state.metrics = metrics
    app.state.events = feed
    app.state.job_kinds = kinds
    return app
