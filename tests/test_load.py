"""Fifty writers for ten seconds against a real `graphql-api serve` on PostgreSQL
(bench/load.py, which runs longer by hand): no 5xx, and afterwards every group's count,
members, history and outbox agree (see bench/load.py for each invariant)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.load import run

RETRYABLE_FAULTS = ("DBAPIError: deadlock detected", "DBAPIError: could not serialize access")
"""What PostgreSQL aborts to keep concurrent transactions apart; until such a transaction is
retried, it reaches the client as INTERNAL_SERVER_ERROR, which is counted, not hidden."""


async def test_fifty_writers_keep_every_invariant(database_url: str, engine: Any):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: fifty writers queue, they never race")
    report, problems, counts = await run(database_url, writers=50, seconds=10)
    print("\n".join([*report.lines(), f"checked: {counts}"]))
    assert report.requests > 100
    assert report.server_errors == 0 and report.transport_errors == 0
    assert problems == []
    assert counts["history rows"] == counts["outbox membership events"] > 0
    unexpected = [fault for fault in report.faults if not fault.startswith(RETRYABLE_FAULTS)]
    assert unexpected == [], report.faults
    assert report.codes["INTERNAL_SERVER_ERROR"] == sum(report.faults.values())
    assert set(report.codes) <= {"INTERNAL_SERVER_ERROR", "CONFLICT", "NOT_FOUND"}, report.codes
