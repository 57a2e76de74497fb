"""``/metrics`` for Prometheus: GraphQL requests by operation and outcome with their
latency, and the outbox (its depth, its oldest due delivery, deliveries by status)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from graphql_api.kernel.db import utcnow
from graphql_api.notifications.models import RETRYABLE
from graphql_api.notifications.service import OutboxState, outbox_state

logger = logging.getLogger("graphql_api.metrics")

MAX_OPERATION_NAMES = 200
"""Operation names are the clients' choice: after this many distinct ones (or one longer
than ``MAX_OPERATION_NAME_LENGTH``), a new one is counted as ``other``."""
MAX_OPERATION_NAME_LENGTH = 100
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """One application's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "graphql_api_requests",
            "GraphQL requests by operation name and outcome (ok, errors: at fields, "
            "invalid: never ran, unauthenticated, server_error).",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "graphql_api_request_duration_seconds",
            "Time to answer a GraphQL request, by operation name.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.outbox = OutboxCollector()
        self.registry.register(self.outbox)
        self._operations: set[str] = set()

    def observe(self, operation: str, outcome: str, seconds: float) -> None:
        label = self._label(operation)
        self.requests.labels(label, outcome).inc()
        self.latency.labels(label).observe(seconds)

    def _label(self, operation: str) -> str:
        if operation in self._operations:
            return operation
        if (
            len(operation) > MAX_OPERATION_NAME_LENGTH
            or len(self._operations) >= MAX_OPERATION_NAMES
        ):
            return "other"
        self._operations.add(operation)
        return operation

    async def exposition(self, sessions: async_sessionmaker[AsyncSession]) -> bytes:
        """Every metric in Prometheus' text format, the outbox read afresh; when the
        database does not answer, the outbox's metrics are left out (and it is logged)."""
        try:
            async with sessions() as session:
                self.outbox.state = await outbox_state(session, utcnow())
        except Exception as error:  # whatever stops the database from answering
            logger.warning("metrics without the outbox: the database does not answer: %r", error)
            self.outbox.state = None
        return generate_latest(self.registry)


class OutboxCollector(Collector):
    """The outbox as last read, for the exposition that read it."""

    state: OutboxState | None = None

    def collect(self) -> Iterator[Metric]:
        if self.state is None:
            return
        by_status = self.state.by_status
        yield GaugeMetricFamily(
            "graphql_api_outbox_depth",
            "Deliveries still to make (PENDING and FAILED).",
            value=sum(by_status[status] for status in RETRYABLE),
        )
        oldest = self.state.oldest_due
        yield GaugeMetricFamily(
            "graphql_api_outbox_oldest_due_age_seconds",
            "How long the delivery due longest has waited for a worker; 0 when none is due.",
            value=(utcnow() - oldest).total_seconds() if oldest is not None else 0.0,
        )
        deliveries = GaugeMetricFamily(
            "graphql_api_outbox_deliveries", "Deliveries by status.", labels=["status"]
        )
        for status, count in sorted(by_status.items()):
            deliveries.add_metric([status.value], count)
        yield deliveries


def metrics_route(metrics: Metrics, sessions: async_sessionmaker[AsyncSession]) -> Route:
    async def scrape(_: Request) -> Response:
        body = await metrics.exposition(sessions)
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return Route("/metrics", scrape, methods=["GET"])
