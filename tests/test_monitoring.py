"""What operators watch: the health probes, the metrics and the request log."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from graphql_api.kernel.requests import RequestRecord, recording
from graphql_api.settings import Settings
from graphql_api.testing import GraphQLClient, new_group_id
from graphql_api.web.app import create_app
from graphql_api.web.monitoring.logs import JsonFormatter, TextFormatter, with_request_id
from graphql_api.web.monitoring.metrics import MAX_OPERATION_NAMES, Metrics


async def get(app: Any, path: str, **options: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.get(path, **options)


async def test_live_and_ready_on_a_migrated_database(app: Any):
    for path in ("/health", "/health/live"):
        response = await get(app, path)
        assert (response.status_code, response.json()) == (200, {"status": "ok"}), path
    ready = await get(app, "/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "schema": "newest"})


@pytest.mark.parametrize(
    ("database", "reason"),
    [
        ("unmigrated", "The database schema is not the newest (alembic_version"),
        ("unreachable", "The database does not answer."),
    ],
)
async def test_not_ready_when_the_database_is_behind_or_away(
    tmp_path: Path, database: str, reason: str
):
    url = {
        "unmigrated": f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}",
        "unreachable": "postgresql+asyncpg://nobody@127.0.0.1:1/nothing",
    }[database]
    app = create_app(Settings(database_url=url))
    try:
        ready = await get(app, "/health/ready")
        live = await get(app, "/health/live")
    finally:
        await app.state.engine.dispose()
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["reason"].startswith(reason)
    assert live.status_code == 200, "the process still answers"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_requests_by_operation_and_outcome(
    app: Any, client: GraphQLClient, http: httpx.AsyncClient
):
    await new_group_id(client, name="Buurt")  # the webhooks plugin subscribes: one delivery
    await client.data("query Groups { groups { totalCount } }")
    await client.data("query Groups { groups { totalCount } }")
    await client.execute('query Broken { group(id: "nonsense") { name } }')
    await client.execute("{ nothing }")
    await GraphQLClient(http, None).post("{ me { permissions } }")
    found = samples((await get(app, "/metrics")).text)
    requests = "graphql_api_requests_total"
    assert found[(requests, (("operation", "Groups"), ("outcome", "ok")))] == 2
    assert found[(requests, (("operation", "Broken"), ("outcome", "errors")))] == 1
    assert found[(requests, (("operation", "anonymous"), ("outcome", "invalid")))] == 1
    assert found[(requests, (("operation", "unknown"), ("outcome", "unauthenticated")))] == 1
    latency = ("graphql_api_request_duration_seconds_count", (("operation", "Groups"),))
    assert found[latency] == 2
    assert found[("graphql_api_outbox_depth", ())] == 1
    assert found[("graphql_api_outbox_deliveries", (("status", "PENDING"),))] == 1
    assert found[("graphql_api_outbox_deliveries", (("status", "DEAD"),))] == 0
    assert found[("graphql_api_outbox_oldest_due_age_seconds", ())] > 0


async def test_the_outbox_metrics_are_left_out_when_the_database_is_away():
    app = create_app(Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/nothing"))
    try:
        response = await get(app, "/metrics")
    finally:
        await app.state.engine.dispose()
    assert response.status_code == 200
    assert "graphql_api_requests_total" in response.text
    assert "graphql_api_outbox" not in response.text


def test_operation_names_beyond_the_bound_count_as_other():
    metrics = Metrics()
    for n in range(MAX_OPERATION_NAMES + 1):
        metrics.observe(f"Operation{n}", "ok", 0.01)
    metrics.observe("Operation0", "ok", 0.01)
    metrics.observe("X" * 101, "ok", 0.01)
    count = metrics.registry.get_sample_value
    assert count("graphql_api_requests_total", {"operation": "Operation0", "outcome": "ok"}) == 2
    assert count("graphql_api_requests_total", {"operation": "other", "outcome": "ok"}) == 2


async def test_a_request_id_is_honoured_or_made_and_echoed(app: Any, http: httpx.AsyncClient):
    given = await http.get("/health", headers={"X-Request-ID": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    for bad in ("", "with spaces", "x" * 129):
        made = await http.post(
            "/graphql", json={"query": "{ me { permissions } }"}, headers={"X-Request-ID": bad}
        )
        assert made.status_code == 401, "even a refused request has one"
        assert len(made.headers["x-request-id"]) == 32, bad


async def test_each_request_logs_one_line_with_what_it_did(
    client: GraphQLClient, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.INFO, logger="graphql_api.requests"):
        await client.data("query Me { viewer { name } }")
    [line] = [r for r in caplog.records if r.name == "graphql_api.requests"]
    fields = line.fields  # type: ignore[attr-defined]
    assert line.getMessage() == "POST /graphql 200"
    assert {k: fields[k] for k in ("method", "path", "status", "operation", "outcome")} == {
        "method": "POST",
        "path": "/graphql",
        "status": 200,
        "operation": "Me",
        "outcome": "ok",
    }
    assert fields["principal"] == "Johannes Frölich"
    assert fields["statements"] == 1, "the token is checked already: one SELECT of the user"
    assert fields["duration_ms"] > 0 and len(fields["request_id"]) == 32

    entry = json.loads(JsonFormatter().format(line))
    assert entry["message"] == "POST /graphql 200" and entry["level"] == "INFO"
    assert entry["operation"] == "Me" and entry["principal"] == "Johannes Frölich"
    assert entry["request_id"] == fields["request_id"] and entry["statements"] == 1
    text = TextFormatter("%(message)s").format(line)
    assert text.startswith("POST /graphql 200 method=POST") and "operation=Me" in text


def test_a_record_written_during_a_request_carries_its_id():
    record = logging.LogRecord("graphql_api", logging.ERROR, __file__, 1, "failed", None, None)
    with recording(RequestRecord("abc")):
        assert with_request_id(record)
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["request_id"] == "abc" and "ValueError: boom" in entry["exception"]
    outside = logging.LogRecord("graphql_api", logging.INFO, __file__, 1, "idle", None, None)
    assert with_request_id(outside) and "request_id" not in json.loads(
        JsonFormatter().format(outside)
    )
