"""Faults, each with the outcome it must have (bench/faults.py, which runs more rounds by
hand and says what each fault does): a server killed during a bulk add leaves all or
nothing; a worker killed while e-mailing loses no mail; a database that drops the
server's connections is answered again without a restart."""

from __future__ import annotations

from typing import Any

import pytest

from bench.faults import MAILS, MAILS_PER_ADD, bulk_crashes, terminations, worker_crashes

ROUNDS = 5


async def test_a_server_killed_during_a_bulk_add_leaves_all_or_nothing(
    database_url: str, engine: Any
):
    result = await bulk_crashes(database_url, ROUNDS)
    print(result)
    assert sum(result.outcomes.values()) == ROUNDS
    assert set(result.outcomes) <= {"all", "none"}, result.outcomes
    assert result.problems == []


async def test_a_worker_killed_while_mailing_loses_no_mail(database_url: str, engine: Any):
    outcome = await worker_crashes(database_url, 3)
    print(outcome)
    assert outcome.kills == outcome.kills_while_sending == 3
    assert outcome.deliveries == outcome.delivered == MAILS // MAILS_PER_ADD, "one per event"
    assert outcome.distinct == MAILS, "every e-mail arrived"
    assert outcome.messages == MAILS + outcome.duplicates, "only a delivery cut short is resent"


async def test_terminated_connections_are_answered_again_without_a_restart(
    database_url: str, engine: Any
):
    if not database_url.startswith("postgresql"):
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    outcome = await terminations(database_url, 3)
    print(outcome)
    assert outcome.terminations == 3 and outcome.connections_terminated >= 3
    assert outcome.recovered
    assert outcome.problems == []
    # A request on a connection that was cut is answered 503, never as a server fault.
    assert outcome.faults == {} and set(outcome.codes) <= {"SERVICE_UNAVAILABLE"}, outcome
