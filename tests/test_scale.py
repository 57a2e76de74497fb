"""The service across hosts while its processes die (bench/scale.py), for 20 seconds of
load: network namespaces for a database host, two API hosts and a worker host, Debian's
nginx in front, and `kill -9` of the worker and of one API host and a PostgreSQL restart
during the load. Nothing is lost or repeated, and only connection errors near a fault
occur. `make scale-test` runs it for 60 seconds and prints the figures.

It needs root (namespaces, a cluster run as the postgres user), `ip netns`, nginx and
PostgreSQL's programs: skipped without them, except in CI (CI=true), where that fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.scale import BULK, hosts, postgresql_bin, run, scale
from tests.nginx_site import nginx_binary

SECONDS = 20.0


def _missing() -> str | None:
    """What this machine lacks to make the hosts, if anything."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "`ip` is missing (apt-get install iproute2)"
    try:
        postgresql_bin()
    except RuntimeError as error:
        return str(error)
    probe = run("ip", "netns", "add", "scale-probe")
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.strip()}"
    run("ip", "netns", "del", "scale-probe")
    return None


@pytest.fixture
def folder() -> Iterator[Path]:
    missing = _missing()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the scale test: {missing}")
        pytest.skip(missing)
    nginx_binary()  # skipped (or failed in CI) without nginx
    with hosts() as made:
        yield made


async def test_nothing_is_lost_while_hosts_die(folder: Path):
    figures = await scale(SECONDS, folder)
    print(figures.table())
    assert figures.failures() == []
    assert set(figures.faults) == {
        "kill -9 worker",
        "kill -9 api1",
        "api1 back",
        "pg_ctl restart -m fast",
    }
    # The worker and one API host (its `serve` and its two workers at least) really died.
    assert figures.killed["worker"] >= 1 and figures.killed["api1"] >= 3
    assert figures.requests.total() > 200
    assert {"add", "remove", "edit contact", "read"} <= set(figures.requests)
    # Subscribers on the killed API host were cut off and resumed.
    assert figures.disconnects.total() > 0
    assert figures.job == {"state": "SUCCEEDED", "total": BULK, "done": BULK}
    # The worker died mid-job: a chunk of it was cut short and run again by the next one.
    assert figures.job_done_at_worker_kill is not None
    assert 0 < figures.job_done_at_worker_kill < BULK
    webhooks = sum(n for kind, n in figures.deliveries.items() if kind.startswith("webhooks "))
    assert figures.webhook_keys == webhooks > 0
    assert (
        figures.checked["history rows"] == figures.checked["contacts in outbox membership events"]
    )
    assert sum(len(s.messages) for s in figures.subscribers) > BULK


def test_a_run_shorter_than_its_faults_is_refused():
    done = subprocess.run(
        [sys.executable, "bench/scale.py", "--seconds", "5"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--seconds must be at least 10" in done.stderr
