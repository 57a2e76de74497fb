"""Benchmark: our GraphQL API side by side with PostGraphile 5 on the same PostgreSQL data.

Dataset M in PostgreSQL; one server process each: ours (``graphql-api serve``) and
PostGraphile 5 (amber preset over the same tables, ``bench/peer/graphile.config.mjs``).
Both are asked the same questions; before timing, their answers must hold the same data
(primary keys and field values), or the run stops. wrk (1 thread, 8 connections) then
loads one server at a time: a warm-up run each, then rounds alternating ours and
PostGraphile. Each row gives the median requests/s over the rounds, the median p50 and
p99 latency, and the ratio ours / PostGraphile of the requests/s.

    python bench/peer/run.py --only contact --seconds 3 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import graphql_api
from bench.run import append_results, database_url, ensure_dataset, pk
from graphql_api.graphql_base.relay import to_global_id
from graphql_api.kernel.db import create_engine

ROOT = Path(__file__).resolve().parents[2]
PEER = Path(__file__).resolve().parent
POSTGRAPHILE = PEER / "node_modules" / "postgraphile"
GRAPHQL_API = Path(sys.executable).parent / "graphql-api"
BENCH_USER = ("Bench", "bench@example.coop")
CONTACT_FIELDS = "firstName lastName email city"
WARM_UP_SECONDS = 2


@dataclass(frozen=True)
class Ask:
    """One side's request for a question and how to read its answer as plain rows."""

    query: str
    variables: dict[str, Any]
    rows: Callable[[dict[str, Any]], Any]

    def body(self) -> str:
        return json.dumps({"query": self.query, "variables": self.variables})


@dataclass(frozen=True)
class Question:
    name: str
    ours: Ask
    theirs: Ask


@dataclass(frozen=True)
class Sample:
    """The rows the questions are about, chosen from the data."""

    group: int
    """The static group with most explicit members."""
    contact: int
    """The contact with most static memberships."""


def edges(connection: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in connection["edges"]]


def contact_row(contact: dict[str, Any], key: int) -> tuple[Any, ...]:
    return (key, *(contact[field] for field in CONTACT_FIELDS.split()))


def questions(sample: Sample) -> list[Question]:
    """The five questions, each asked the way its server spells it, ordered alike."""
    group = {"id": to_global_id("Group", sample.group)}
    contact = {"id": to_global_id("Contact", sample.contact)}
    return [
        Question(
            "50 groups with their responsible user",
            Ask(
                "{ groups(first: 50) { edges { node { id name responsible { name } } } } }",
                {},
                lambda data: [
                    (pk(g["id"]), g["name"], (g["responsible"] or {}).get("name"))
                    for g in edges(data["groups"])
                ],
            ),
            Ask(
                "{ allGroups(first: 50, orderBy: [NAME_KEY_ASC, ROW_ID_ASC]) { edges { node {"
                " rowId name userByResponsibleId { name } } } } }",
                {},
                lambda data: [
                    (g["rowId"], g["name"], (g["userByResponsibleId"] or {}).get("name"))
                    for g in edges(data["allGroups"])
                ],
            ),
        ),
        Question(
            "100 members of the largest static group",
            Ask(
                "query($id: ID!) { group(id: $id) { members(first: 100) { edges { node {"
                " id " + CONTACT_FIELDS + " } } } } }",
                group,
                lambda data: [contact_row(c, pk(c["id"])) for c in edges(data["group"]["members"])],
            ),
            Ask(
                "query($id: Int!) { groupByRowId(rowId: $id) { membershipsByGroupId(first: 100,"
                " orderBy: CONTACT_ID_ASC) { edges { node { contactByContactId {"
                " rowId " + CONTACT_FIELDS + " } } } } } }",
                {"id": sample.group},
                lambda data: [
                    contact_row(m["contactByContactId"], m["contactByContactId"]["rowId"])
                    for m in edges(data["groupByRowId"]["membershipsByGroupId"])
                ],
            ),
        ),
        Question(
            "a contact's static memberships with group names",
            Ask(
                "query($id: ID!) { contact(id: $id) { memberships {"
                " memberSince group { id name } } } }",
                contact,
                lambda data: [
                    (
                        datetime.fromisoformat(m["memberSince"]),
                        pk(m["group"]["id"]),
                        m["group"]["name"],
                    )
                    for m in data["contact"]["memberships"]
                ],
            ),
            Ask(
                "query($id: Int!) { contactByRowId(rowId: $id) { membershipsByContactId("
                "orderBy: [MEMBER_SINCE_ASC, GROUP_ID_ASC]) { edges { node {"
                " memberSince groupByGroupId { rowId name } } } } } }",
                {"id": sample.contact},
                lambda data: [
                    (
                        datetime.fromisoformat(m["memberSince"]),
                        m["groupByGroupId"]["rowId"],
                        m["groupByGroupId"]["name"],
                    )
                    for m in edges(data["contactByRowId"]["membershipsByContactId"])
                ],
            ),
        ),
        Question(
            "100 contacts, five fields",
            Ask(
                "{ contacts(first: 100) { edges { node { id " + CONTACT_FIELDS + " } } } }",
                {},
                lambda data: [contact_row(c, pk(c["id"])) for c in edges(data["contacts"])],
            ),
            Ask(
                "{ allContacts(first: 100, orderBy: ROW_ID_ASC) { edges { node {"
                " rowId " + CONTACT_FIELDS + " } } } }",
                {},
                lambda data: [contact_row(c, c["rowId"]) for c in edges(data["allContacts"])],
            ),
        ),
        Question(
            "one group's name (the fixed cost)",
            Ask(
                "query($id: ID!) { group(id: $id) { name } }",
                group,
                lambda data: data["group"]["name"],
            ),
            Ask(
                "query($id: Int!) { groupByRowId(rowId: $id) { name } }",
                {"id": sample.group},
                lambda data: data["groupByRowId"]["name"],
            ),
        ),
    ]


async def prepare(url: str) -> tuple[Sample, str]:
    """Seed dataset M if needed; the sample rows and the PostgreSQL server's version."""
    await ensure_dataset(url, "M")
    engine = create_engine(url)
    async with engine.connect() as connection:
        group = await connection.scalar(
            text(
                "SELECT group_id FROM memberships GROUP BY group_id "
                "ORDER BY count(*) DESC, group_id LIMIT 1"
            )
        )
        contact = await connection.scalar(
            text(
                "SELECT contact_id FROM memberships GROUP BY contact_id "
                "ORDER BY count(*) DESC, contact_id LIMIT 1"
            )
        )
        version = await connection.scalar(text("SHOW server_version"))
    await engine.dispose()
    return Sample(group=group, contact=contact), version


def our_environment(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "GRAPHQL_API_DATABASE_URL": url,
        "GRAPHQL_API_DEV_MODE": "false",
        "GRAPHQL_API_OUTBOX_IN_PROCESS_WORKER": "false",
    }


def cli(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GRAPHQL_API), *arguments], env=env, capture_output=True, text=True, check=False
    )


def staff_token(env: dict[str, str]) -> str:
    """Bring the database to the installed plugins' schema and give the bench user a token."""
    migrated = cli(env, "migrate")
    if migrated.returncode:
        sys.exit(f"graphql-api migrate failed:\n{migrated.stderr}")
    name, email = BENCH_USER
    made = cli(env, "create-user", "--name", name, "--email", email, "--admin")
    if made.returncode:  # the user exists: seeding M made it, or an earlier run did
        made = cli(env, "create-token", "--email", email, "--name", "bench/peer")
    if made.returncode:
        sys.exit(f"no token for {email}:\n{made.stderr}")
    return made.stdout.strip().splitlines()[-1]


def serve_supports_workers(env: dict[str, str]) -> bool:
    return "--workers" in cli(env, "serve", "--help").stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(name: str, command: list[str], env: dict[str, str], cwd: Path = ROOT) -> Iterator[str]:
    """Start a server on a free port; yield its GraphQL URL once it accepts connections."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    sys.exit(f"{name} did not start:\n{log.read()[-3000:]}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/graphql"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def postgraphile() -> list[str]:
    return [
        "node",
        "--require",
        str(PEER / "polyfill.cjs"),
        str(POSTGRAPHILE / "dist" / "cli-run.js"),
        "--config",
        str(PEER / "graphile.config.mjs"),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    ]


def postgraphile_environment(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PEER_DATABASE_URL": make_url(url).set(drivername="postgresql").render_as_string(False),
        "GRAPHILE_ENV": "production",
        "NODE_ENV": "production",
    }


def answer(endpoint: str, ask: Ask, headers: dict[str, str]) -> Any:
    response = httpx.post(
        endpoint,
        content=ask.body(),
        headers={"Content-Type": "application/json", **headers},
        timeout=120,
    )
    body = response.json()
    if response.status_code != 200 or "errors" in body:
        sys.exit(f"{endpoint} answered {response.status_code}: {json.dumps(body)[:2000]}")
    return ask.rows(body["data"])


def check_answers(chosen: list[Question], ours: str, theirs: str, headers: dict[str, str]) -> None:
    """Stop unless both servers hold the same, non-empty data for every question."""
    for question in chosen:
        our_rows = answer(ours, question.ours, headers)
        their_rows = answer(theirs, question.theirs, {})
        if our_rows != their_rows or not our_rows:
            sys.exit(
                f"The answers to {question.name!r} differ (or are empty):\n"
                f"ours:         {our_rows!r:.1500}\nPostGraphile: {their_rows!r:.1500}"
            )
        print(f"same answer: {question.name}", file=sys.stderr)


@dataclass(frozen=True)
class Load:
    """One wrk run's summary."""

    per_second: float
    p50_ms: float
    p99_ms: float
    refused: int
    """Responses with a status of 400 or more."""
    socket_errors: int
    graphql_errors: int


def load(endpoint: str, ask: Ask, authorization: str, seconds: int, connections: int) -> Load:
    command = ["wrk", "--threads", "1", "--connections", str(connections)]
    command += ["--duration", f"{seconds}s", "--timeout", "10s"]
    command += ["--script", str(PEER / "post.lua"), endpoint]
    env = {**os.environ, "PEER_BODY": ask.body(), "PEER_AUTHORIZATION": authorization}
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("PEER_SUMMARY "))
    summary = json.loads(line.removeprefix("PEER_SUMMARY "))
    return Load(
        per_second=summary["requests"] / (summary["duration_us"] / 1e6),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        refused=summary["status"],
        socket_errors=sum(summary[kind] for kind in ("connect", "read", "write", "timeout")),
        graphql_errors=summary["graphql"],
    )


@dataclass(frozen=True)
class Side:
    """One server's rounds on one question."""

    loads: list[Load]

    @property
    def per_second(self) -> float:
        return statistics.median(run.per_second for run in self.loads)

    def latency(self) -> str:
        p50 = statistics.median(run.p50_ms for run in self.loads)
        p99 = statistics.median(run.p99_ms for run in self.loads)
        return f"{p50:.1f} / {p99:.1f}"

    def errors(self) -> str | None:
        """What went wrong in its rounds, or None: every count must be 0."""
        counts = {
            "status ≥ 400": sum(run.refused for run in self.loads),
            "socket": sum(run.socket_errors for run in self.loads),
            "GraphQL": sum(run.graphql_errors for run in self.loads),
        }
        wrong = [f"{n} {kind}" for kind, n in counts.items() if n]
        return ", ".join(wrong) or None


@dataclass(frozen=True)
class Options:
    seconds: int
    rounds: int
    connections: int


def measure(
    question: Question, ours: str, theirs: str, token: str, options: Options
) -> tuple[Side, Side]:
    """A warm-up run each, then rounds alternating ours and PostGraphile."""
    sides: dict[str, list[Load]] = {"ours": [], "theirs": []}
    targets = {
        "ours": (ours, question.ours, f"Bearer {token}"),
        "theirs": (theirs, question.theirs, ""),
    }
    warm_up = min(WARM_UP_SECONDS, options.seconds)
    for endpoint, ask, authorization in targets.values():
        load(endpoint, ask, authorization, warm_up, options.connections)
    for _ in range(options.rounds):
        for side, (endpoint, ask, authorization) in targets.items():
            sides[side].append(
                load(endpoint, ask, authorization, options.seconds, options.connections)
            )
    return Side(sides["ours"]), Side(sides["theirs"])


HEADER = (
    "| question | ours req/s | ours p50 / p99 ms | PostGraphile req/s "
    "| PostGraphile p50 / p99 ms | ratio ours / PostGraphile | errors |"
)


def format_row(name: str, ours: Side, theirs: Side) -> str:
    errors = [f"{who}: {e}" for who, e in (("ours", ours.errors()), ("PG", theirs.errors())) if e]
    return (
        f"| {name} | {ours.per_second:.0f} | {ours.latency()} | {theirs.per_second:.0f} "
        f"| {theirs.latency()} | {ours.per_second / theirs.per_second:.2f}x "
        f"| {'**' + '; '.join(errors) + '**' if errors else 'none'} |"
    )


def first_line(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return next(iter((done.stdout or done.stderr).strip().splitlines()), "")


def versions(postgres: str, workers: str) -> str:
    """The machine and every program in the comparison, as a markdown table."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    source = Path(graphql_api.__file__).resolve().parent.parent
    commit = first_line(["git", "-C", str(source), "rev-parse", "--short", "HEAD"])
    changed = first_line(["git", "-C", str(source), "status", "--porcelain", "--", "graphql_api"])
    package = json.loads((POSTGRAPHILE / "package.json").read_text())["version"]
    rows = {
        "machine": f"{os.cpu_count()} cores, {cpu}",
        "Python": sys.version.split()[0],
        "graphql-api": f"{importlib.metadata.version('graphql-api')}, commit {commit}"
        + (" with uncommitted changes" if changed else ""),
        "graphql-api serve --workers": workers,
        "Node": first_line(["node", "--version"]),
        "PostGraphile": package,
        "PostgreSQL": postgres,
        "wrk": first_line(["wrk", "--version"]).split(" Copyright")[0],
    }
    return "\n".join(
        ["| what | version |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows.items())]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each timed run")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per server")
    parser.add_argument("--only", help="run only the questions whose name contains this text")
    parser.add_argument("--connections", type=int, default=8, help="wrk's open connections")
    parser.add_argument(
        "--workers", type=int, help="also measure ours with this many worker processes"
    )
    parser.add_argument("--results", type=Path, help="append the markdown tables to this file")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk (make bench-peer does it)")
    if not POSTGRAPHILE.exists():
        sys.exit("PostGraphile is missing: npm ci in bench/peer (make bench-peer does it)")
    url = database_url("postgresql", "M")
    sample, postgres = asyncio.run(prepare(url))
    chosen = [q for q in questions(sample) if not args.only or args.only in q.name]
    if not chosen:
        sys.exit(f"no question contains {args.only!r}")
    env = our_environment(url)
    token = staff_token(env)
    serve = [str(GRAPHQL_API), "serve", "--host", "127.0.0.1", "--port", "{port}"]
    configurations = [("ours, 1 process", serve)]
    workers = "supported" if serve_supports_workers(env) else "not supported"
    if args.workers and workers == "supported":
        configurations.append(
            (f"ours, {args.workers} workers", [*serve, "--workers", str(args.workers)])
        )
    elif args.workers:
        print("graphql-api serve has no --workers here; measuring 1 process only", file=sys.stderr)
    options = Options(args.seconds, args.rounds, args.connections)
    how = (
        f"wrk with 1 thread and {options.connections} connections, {options.seconds:g} s per "
        f"run; per question a {min(WARM_UP_SECONDS, options.seconds):g} s warm-up run each, "
        f"then {options.rounds} rounds alternating ours and PostGraphile (1 process); medians "
        "over the rounds"
    )
    if args.results:
        append_results(
            args.results, "Machine and versions", "Dataset M", versions(postgres, workers)
        )
    with running("PostGraphile", postgraphile(), postgraphile_environment(url), PEER) as theirs:
        for title, command in configurations:
            with running("graphql-api serve", command, env) as ours:
                check_answers(chosen, ours, theirs, {"Authorization": f"Bearer {token}"})
                rows = []
                for question in chosen:
                    rows.append(
                        format_row(question.name, *measure(question, ours, theirs, token, options))
                    )
                    print(rows[-1], file=sys.stderr)
            table = "\n".join([HEADER, "|---|---|---|---|---|---|---|", *rows])
            print(f"\n{title}\n\n{table}")
            if args.results:
                # Other work on the machine shows here, as well as the servers' own.
                load_average = f"1-minute load average at the end {os.getloadavg()[0]:.1f}"
                title = f"{title}, against PostGraphile"
                append_results(args.results, title, f"{how}; {load_average}", table)


if __name__ == "__main__":
    main()
