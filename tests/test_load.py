"""Fifty writers for ten seconds against a real `graphql-api serve` on PostgreSQL
(bench/load.py, which runs longer by hand): no 5xx, and afterwards every group's count,
members, history and outbox agree (see bench/load.py for each invariant)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.load import run


async def test_fifty_writers_keep_every_invariant(database_url: str, engine: Any):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: fifty writers queue, they never race")
    report, problems, counts = await run(database_url, writers=50, seconds=10)
    print("\n".join([*report.lines(), f"checked: {counts}"]))
    assert report.requests > 100
    assert report.server_errors == 0 and report.transport_errors == 0
    assert problems == []
    assert counts["history rows"] == counts["contacts in outbox membership events"] > 0
    # A deadlock or a serialization failure is retried, then answered CONFLICT: never a fault.
    assert report.faults == {}, report.faults
    assert set(report.codes) <= {"CONFLICT", "NOT_FOUND"}, report.codes
