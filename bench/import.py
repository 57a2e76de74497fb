"""Benchmark: a contact import of 100,000 rows through HTTP against a real `graphql-api
serve`, with a separate `graphql-api worker` running the jobs, on a copy of dataset M.

The file is made here from a fixed random seed: 100,000 new contacts (Dutch names with
their tussenvoegsel apart, e-mail addresses unique and not in the dataset, a tenth with
a five-digit postal code starting with 0, street and house number apart), 1% of them
bad (an e-mail address that is none, or no name), as a CSV (`;`, Windows-1252, as Excel
saves one in the Netherlands) and as an XLSX of the same rows (text cells, the house
number a number). Each file is imported on a fresh copy of the dataset: upload
(``POST /uploads``), the dry run, then the import into a new group; each job timed from
``startImport`` until ``job(id:)`` says SUCCEEDED, and its outcome checked against the
rows made. The RSS of the server's and the worker's process trees is sampled all along.
On PostgreSQL the floor is ``COPY`` of the same CSV into a scratch table (and of the
contacts' rows into one shaped like ``contacts``), in the same run.

    python bench/import.py --backend postgresql --backend sqlite --results bench/RESULTS-import.md
    python bench/import.py --backend sqlite --rows 10000 --formats csv --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import random
import shlex
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import xlsxwriter
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import POSTGRES_SERVER, append_results, database_url, ensure_dataset
from bench.serving import CLI, BenchError, Process, RssSampler, cli, start_server, start_worker
from bench.writes import QUEUED_LIMIT, TERMINAL, Api, drop_database
from graphql_api.kernel.db import create_engine

SIZE = "M"
SEED = 2026
HEADER = [
    "Voornaam",
    "Tussenvoegsel",
    "Achternaam",
    "E-mailadres",
    "Telefoonnummer",
    "Straat",
    "Huisnummer",
    "Postcode",
    "Plaats",
]
FIELDS = [
    "FIRST_NAME",
    "LAST_NAME",
    "LAST_NAME",
    "EMAIL",
    "PHONE",
    "STREET",
    "STREET",
    "POSTAL_CODE",
    "CITY",
]
"""What each column of ``HEADER`` fills: tussenvoegsel before the last name, the house
number after the street, as the import joins them."""
FIRST_NAMES = [
    "Anna", "Bram", "Daan", "Joël", "Chloë", "Sem", "Noëlle", "Lotte", "Thijs", "Fenna",
    "Sjoerd", "Renée", "Zoë", "Jurriën", "Inge", "Pieter", "Saskia", "Wouter", "Maaike", "Ruben",
]  # fmt: skip
TUSSENVOEGSELS = ["", "", "", "", "de", "van", "van der", "van den", "van 't", "ter"]
LAST_NAMES = [
    "Vries", "Jansen", "Berg", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos", "Vos",
    "Peters", "Hendriks", "Dijkstra", "Hoekstra", "Brouwer", "Gröning", "Çelik", "Ruiz Peña",
    "d'Hondt", "Kuipers",
]  # fmt: skip
STREETS = ["Dorpsstraat", "Kerkweg", "Molenlaan", "Beukenlaan", "Havenkade", "Prinsengracht"]
DUTCH_CITIES = [("Zwolle", "80"), ("Deventer", "74"), ("Utrecht", "35"), ("Groningen", "97")]
LEADING_ZERO_CITIES = [("Dresden", "01"), ("Leipzig", "04"), ("Chemnitz", "09")]
BAD_EMAILS = ["{}.at.example.nl", "{}@example", "{} @example.nl"]
BAD_ROW = 37
"""Row ``index`` is bad when ``index % 100`` is this: one in a hundred."""
DOMAIN = "import.example.nl"
"""No contact of the datasets has an address here (they use example.nl)."""

START = """mutation($i: ImportInput!) { startImport(input: $i) {
  job { id state } group { id } errors { field code message } } }"""
JOB = "query($id: ID!) { job(id: $id) { state total done errors { code message } } }"
REPORT = """query($j: ID!) { importReport(jobId: $j) {
  dryRun created updated unchanged skipped rejected pending } }"""
MEMBERS = "query($id: ID!) { group(id: $id) { memberCount } }"
TARGETS = {"dry run": 30.0, "import": 90.0}
"""Seconds from ``startImport`` to SUCCEEDED, for the CSV."""
XLSX_FACTOR = 1.5
RSS_LIMIT_MB = 300.0
MAX_REFUSED_POLLS = 50
RESULTS_TITLE = "# Import and export benchmark results\n"
SECTION = "## Import"


# --- the file ------------------------------------------------------------------------


@dataclass(frozen=True)
class Made:
    """The rows of the file, and how many of them the import must refuse."""

    rows: list[list[str]]
    bad: int

    @property
    def good(self) -> int:
        return len(self.rows) - self.bad

    @property
    def leading_zeros(self) -> int:
        """Good rows with an e-mail address and a postal code starting with 0."""
        return sum(
            1
            for index, row in enumerate(self.rows)
            if index % 100 != BAD_ROW and row[3] and row[7].startswith("0")
        )


def _ascii(text_: str) -> str:
    folded = unicodedata.normalize("NFKD", text_).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def make_rows(count: int) -> Made:
    """``count`` new contacts, from a fixed seed; one row in a hundred is bad."""
    rng = random.Random(SEED)
    rows, bad = [], 0
    for index in range(count):
        first, tussen, last = (
            rng.choice(FIRST_NAMES),
            rng.choice(TUSSENVOEGSELS),
            rng.choice(LAST_NAMES),
        )
        local = f"{_ascii(first)}.{_ascii(tussen + last)}.{index}"
        email = "" if index % 20 == 3 else f"{local}@{DOMAIN}"
        if index % 10 == 7:
            city, prefix = rng.choice(LEADING_ZERO_CITIES)
            postal = f"{prefix}{rng.randrange(100, 999)}"
        else:
            city, prefix = rng.choice(DUTCH_CITIES)
            postal = (
                f"{prefix}{rng.randrange(10, 99)} {rng.choice('ABCDEFGH')}{rng.choice('KLMNPR')}"
            )
        if index % 100 == BAD_ROW:
            bad += 1
            if (index // 100) % 4 == 3:
                first = tussen = last = ""
            else:
                email = rng.choice(BAD_EMAILS).format(local)
        phone = f"06-{rng.randrange(10_000_000, 99_999_999)}" if index % 2 else ""
        house = str(rng.randrange(1, 300))
        rows.append([first, tussen, last, email, phone, rng.choice(STREETS), house, postal, city])
    return Made(rows, bad)


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode("windows-1252")


def xlsx_bytes(rows: list[list[str]]) -> bytes:
    """The rows as one sheet with shared strings, as Excel saves it; house numbers are
    numbers, postal codes and phone numbers text (their leading zeros stay)."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("Contacten")
    sheet.write_row(0, 0, HEADER)
    house = HEADER.index("Huisnummer")
    for number, row in enumerate(rows, start=1):
        for column, value in enumerate(row):
            if column == house:
                sheet.write_number(number, column, int(value))
            elif value:
                sheet.write_string(number, column, value)
    book.close()
    return out.getvalue()


# --- the database copies -------------------------------------------------------------


async def fresh_copy(backend: str) -> str:
    """A copy of dataset M (seeded first if need be) for one import: its URL."""
    source = database_url(backend, SIZE)
    await ensure_dataset(source, SIZE)
    if backend == "sqlite":
        return copy_sqlite(source)
    name = f"{make_url(source).database}_import"
    admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(
                text(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(source).database}"')
            )
    finally:
        await admin.dispose()
    return make_url(source).set(database=name).render_as_string(hide_password=False)


def copy_sqlite(source: str) -> str:
    """A copy of a SQLite database beside it, by SQLite's backup: its URL."""
    path = Path(make_url(source).database or "").resolve()
    target = path.with_name(f"{path.stem}-import.sqlite3")
    remove_sqlite(target)
    with sqlite3.connect(path) as original, sqlite3.connect(target) as copy:
        original.backup(copy)
    return f"sqlite+aiosqlite:///{target}"


def remove_sqlite(path: Path) -> None:
    """The database file and its journal and WAL files."""
    for part in path.parent.glob(f"{path.name}*"):
        part.unlink()


async def drop_copy(url: str) -> None:
    if url.startswith("sqlite"):
        remove_sqlite(Path(make_url(url).database or ""))
    else:
        await drop_database(url)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- the floor -----------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    file_seconds: float
    """``COPY`` of the CSV's bytes into a table of its nine text columns."""
    contacts_seconds: float
    """``COPY`` of the good rows as contacts into a table shaped like ``contacts``."""


def contact_records(made: Made) -> Iterator[tuple[Any, ...]]:
    """The good rows as the import makes them: names and street joined, blanks as null."""
    moment = datetime.now(UTC)
    for index, row in enumerate(made.rows):
        if index % 100 == BAD_ROW:
            continue
        first, tussen, last, email, phone, street, house, postal, city = row
        yield (
            index + 1,
            "PERSON",
            first,
            f"{tussen} {last}".strip(),
            email or None,
            phone or None,
            f"{street} {house}",
            postal,
            city,
            moment,
            moment,
        )


CONTACT_COPY_COLUMNS = [
    "id",
    "kind",
    "first_name",
    "last_name",
    "email",
    "phone",
    "street",
    "postal_code",
    "city",
    "created_at",
    "updated_at",
]


async def copy_floor(url: str, data: bytes, made: Made, runs: int) -> Floor:
    """The median of ``runs`` of each ``COPY``, each into a new temporary table."""
    records = list(contact_records(made))
    columns = ", ".join(f'"{name}" text' for name in HEADER)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    files, contacts = [], []
    try:
        for _ in range(runs):
            async with connection.transaction():
                await connection.execute(f"CREATE TEMP TABLE floor_file ({columns}) ON COMMIT DROP")
                started = time.perf_counter()
                await connection.copy_to_table(
                    "floor_file",
                    source=io.BytesIO(data),
                    format="csv",
                    delimiter=";",
                    header=True,
                    encoding="WIN1252",
                )
                files.append(time.perf_counter() - started)
            async with connection.transaction():
                await connection.execute(
                    "CREATE TEMP TABLE floor_contacts"
                    " (LIKE contacts INCLUDING INDEXES INCLUDING CONSTRAINTS) ON COMMIT DROP"
                )
                started = time.perf_counter()
                await connection.copy_records_to_table(
                    "floor_contacts", records=records, columns=CONTACT_COPY_COLUMNS
                )
                contacts.append(time.perf_counter() - started)
    finally:
        await connection.close()
    return Floor(statistics.median(files), statistics.median(contacts))


# --- one import through HTTP ---------------------------------------------------------


@dataclass
class Timed:
    """One job from ``startImport`` to SUCCEEDED."""

    seconds: float
    staged: float | None
    """When ``total`` was first seen: the file read and staged (to the poll's precision)."""
    report: dict[str, Any]
    rss: dict[str, float]
    """Peak MB of each process tree while the job ran."""
    group: str | None = None
    refused_polls: int = 0
    """Polls of ``job(id:)`` the server answered with an error (the job went on)."""


@dataclass
class Outcome:
    backend: str
    kind: str
    """csv or xlsx."""
    size: int
    upload_seconds: float
    jobs: dict[str, Timed] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    """Peak MB of each process tree over the whole run of this file."""
    members: int | None = None


async def upload(http: httpx.AsyncClient, token: str, name: str, data: bytes) -> tuple[str, float]:
    started = time.perf_counter()
    response = await http.post(
        "/uploads",
        params={"name": name},
        content=data,
        headers={"Authorization": f"Bearer {token}"},
    )
    seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise BenchError(f"upload refused: HTTP {response.status_code} {response.text[:500]}")
    return response.json()["id"], seconds


async def run_job(
    api: Api, sampler: RssSampler, given: dict[str, Any], poll: float, limit: float
) -> Timed:
    window = time.monotonic()
    started = time.perf_counter()
    payload = await api.payload(START, {"i": given}, "startImport")
    job_id = payload["job"]["id"]
    staged, refused = None, 0
    while True:
        try:
            job = (await api.data(JOB, {"id": job_id}))["job"]
        except BenchError:
            # On SQLite a read whose token check notes the token's use must write, and
            # waits for the chunk's transaction: counted, as a finding; the job goes on.
            refused += 1
            if refused > MAX_REFUSED_POLLS:
                raise
            await asyncio.sleep(poll)
            continue
        elapsed = time.perf_counter() - started
        if staged is None and job["total"] is not None:
            staged = elapsed
        if job["state"] in TERMINAL:
            break
        if job["state"] == "QUEUED" and elapsed > QUEUED_LIMIT:
            raise BenchError(f"no worker took job {job_id} within {QUEUED_LIMIT:.0f} s")
        if elapsed > limit:
            raise BenchError(f"job {job_id} not finished after {limit:.0f} s: {job}")
        await asyncio.sleep(poll)
    if job["state"] != "SUCCEEDED":
        raise BenchError(f"job {job_id} ended {job['state']}: {job}")
    report = (await api.data(REPORT, {"j": job_id}))["importReport"]
    rss = sampler.peaks(window, time.monotonic())
    group = (payload.get("group") or {}).get("id")
    return Timed(elapsed, staged, report, rss, group, refused)


def check(timed: Timed, made: Made, label: str) -> None:
    """The job's outcome must be the file's: every good row made, every bad one refused."""
    report = timed.report
    got = (report["created"], report["rejected"], report["pending"])
    if got != (made.good, made.bad, 0):
        raise BenchError(
            f"{label}: created, rejected, pending {got}, expected {(made.good, made.bad, 0)}"
        )


async def check_values(url: str, made: Made, label: str) -> None:
    """The postal codes' leading zeros must have come through the file and the import."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            kept = await connection.scalar(
                text("SELECT count(*) FROM contacts WHERE email LIKE :d AND postal_code LIKE '0%'"),
                {"d": f"%@{DOMAIN}"},
            )
    finally:
        await engine.dispose()
    if kept != made.leading_zeros:
        raise BenchError(f"{label}: {kept} postal codes kept their 0, {made.leading_zeros} had it")


def environment(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "GRAPHQL_API_DATABASE_URL": url,
        "GRAPHQL_API_DEV_MODE": "false",
        "GRAPHQL_API_SMTP_CATCH": "true",
        "GRAPHQL_API_OUTBOX_IN_PROCESS_WORKER": "false",
        # As deploy/systemd's units run the service (docs/deployment.md).
        "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
    }


def worker(env: dict[str, str], logs: Path, label: str, profile: Path | None) -> Process:
    """`graphql-api worker`, under cProfile (written when it stops) when asked."""
    if profile is None:
        return start_worker(env, logs / f"{label}-worker.log")
    profile.mkdir(parents=True, exist_ok=True)
    output = profile / f"{label}-worker.prof"
    process = Process(
        "worker",
        [sys.executable, "-m", "cProfile", "-o", str(output), *CLI[1:], "worker"],
        env,
        logs / f"{label}-worker.log",
    )
    time.sleep(2)
    if not process.alive():
        raise BenchError(f"the profiled worker exited:\n{process.tail()}")
    return process


async def import_file(
    backend: str, kind: str, data: bytes, made: Made, args: argparse.Namespace, logs: Path
) -> Outcome:
    """On a fresh copy of the dataset: upload ``data``, its dry run, its import into a
    new group; the processes stopped and the copy dropped whatever happens."""
    url = await fresh_copy(backend)
    label = f"{backend}-{kind}"
    processes: list[Process] = []
    sampler: RssSampler | None = None
    try:
        env = environment(url)
        cli(env, "migrate")
        created = cli(env, "create-user", "--name", "Bench import", "--email", "bench-import@example.coop", "--admin")  # fmt: skip
        token = created.split()[-1]
        base, server = start_server(env, logs / f"{label}-serve.log")
        processes.append(server)
        processes.append(worker(env, logs, label, args.profile))
        sampler = RssSampler({"serve": server.pid, "worker": processes[-1].pid})
        sampler.start()
        async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(300, connect=10)) as http:
            api = Api(http, token)
            upload_id, seconds = await upload(http, token, f"contacten.{kind}", data)
            outcome = Outcome(backend, kind, len(data), seconds)
            columns = [{"column": c, "field": f} for c, f in zip(HEADER, FIELDS, strict=True)]
            given = {"uploadId": upload_id, "columns": columns}
            for name, extra in (
                ("dry run", {"dryRun": True}),
                ("import", {"newGroupName": f"Import {kind.upper()}"}),
            ):
                timed = await run_job(api, sampler, {**given, **extra}, args.poll, args.job_timeout)
                check(timed, made, f"{label} {name}")
                outcome.jobs[name] = timed
                print(f"{label} {name}: {timed.seconds:.1f} s", file=sys.stderr)
            group = outcome.jobs["import"].group
            if group:
                outcome.members = (await api.data(MEMBERS, {"id": group}))["group"]["memberCount"]
        await check_values(url, made, label)
        outcome.rss = sampler.peaks()
        return outcome
    except BaseException:
        for process in processes:
            print(f"--- the last lines of {process.name} ({process.log}) ---", file=sys.stderr)
            print(process.tail(), file=sys.stderr)
        raise
    finally:
        if sampler:
            sampler.stop()
        for process in reversed(processes):
            process.stop(grace=60 if args.profile else 15)
        await drop_copy(url)


# --- the report ----------------------------------------------------------------------


def judge(value: float, limit: float) -> str:
    return "pass" if value < limit else "**FAIL**"


def table(outcomes: list[Outcome], floor: Floor | None, made: Made) -> tuple[str, list[str]]:
    """The markdown table of one backend's run, and the notes under it."""
    lines = [
        "| case | measured | target | result | API / COPY floor | notes |",
        "|---|---|---|---|---|---|",
    ]
    notes = []
    csv_times = {}
    for outcome in outcomes:
        kind = outcome.kind.upper()
        for name, timed in outcome.jobs.items():
            if outcome.kind == "csv":
                csv_times[name] = timed.seconds
                target = f"< {TARGETS[name]:.0f} s"
                result = judge(timed.seconds, TARGETS[name])
            elif name in csv_times:
                limit = XLSX_FACTOR * csv_times[name]
                target = f"≤ {XLSX_FACTOR}x CSV ({limit:.1f} s)"
                result = "pass" if timed.seconds <= limit else "**FAIL**"
                result += f" ({timed.seconds / csv_times[name]:.2f}x)"
            else:
                target, result = f"≤ {XLSX_FACTOR}x CSV", "no CSV run"
            ratio = f"{timed.seconds / floor.file_seconds:.0f}x" if floor else "—"
            staged = f"staged after {timed.staged:.1f} s; " if timed.staged is not None else ""
            if timed.refused_polls:
                staged += f"{timed.refused_polls} polls answered 500 meanwhile; "
            report = timed.report
            lines.append(
                f"| {kind} {name}: `startImport` until SUCCEEDED | {timed.seconds:.1f} s"
                f" | {target} | {result} | {ratio} | {staged}created {report['created']:,},"
                f" rejected {report['rejected']:,}; RSS peaks serve"
                f" {timed.rss['serve']:.0f} MB, worker {timed.rss['worker']:.0f} MB |"
            )
        for process, peak in outcome.rss.items():
            lines.append(
                f"| {kind}: RSS peak of the {process} process tree | {peak:.0f} MB"
                f" | < {RSS_LIMIT_MB:.0f} MB | {judge(peak, RSS_LIMIT_MB)} | — |"
                " from its start to the import's end, sampled every 0.5 s |"
            )
        notes.append(
            f"{kind}: {outcome.size / 1e6:.1f} MB uploaded in {outcome.upload_seconds:.1f} s;"
            f" the new group has {outcome.members:,} members."
            if outcome.members is not None
            else f"{kind}: {outcome.size / 1e6:.1f} MB uploaded in {outcome.upload_seconds:.1f} s."
        )
    if floor:
        lines.append(
            f"| floor: `COPY` of the CSV into a scratch table (9 text columns) |"
            f" {floor.file_seconds:.2f} s | — | — | 1x | the same bytes, WIN1252, `;` |"
        )
        lines.append(
            f"| floor: `COPY` of the {made.good:,} good rows as contacts |"
            f" {floor.contacts_seconds:.2f} s | — | — |"
            f" {outcomes[0].jobs['import'].seconds / floor.contacts_seconds:.0f}x"
            f" ({outcomes[0].kind.upper()} import) |"
            " into a table `LIKE contacts` with its indexes |"
        )
    return "\n".join(lines), notes


def write_results(path: Path, sections: list[tuple[str, str, str]]) -> None:
    """Append the sections under the "## Import" heading, adding the heading when the
    file's last section is another's (the export benchmark writes to the same file)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(descriptor, "w") as out:
            out.write(RESULTS_TITLE)
    except FileExistsError:
        pass
    headings = [line for line in path.read_text().splitlines() if line.startswith("## ")]
    if not headings or headings[-1].strip() != SECTION:
        with path.open("a") as out:
            out.write(f"\n{SECTION}\n")
    for title, how, body in sections:
        append_results(path, title, how, body)


async def run(args: argparse.Namespace, logs: Path) -> list[tuple[str, str, str]]:
    made = make_rows(args.rows)
    files = {"csv": csv_bytes(made.rows), "xlsx": xlsx_bytes(made.rows)}
    print(
        f"{len(made.rows):,} rows, {made.bad:,} bad; "
        + ", ".join(f"{k} {len(v) / 1e6:.1f} MB" for k, v in files.items()),
        file=sys.stderr,
    )
    sections = []
    for backend in args.backend:
        floor = None
        if backend == "postgresql":
            url = await fresh_copy(backend)
            try:
                floor = await copy_floor(url, files["csv"], made, args.floor_runs)
            finally:
                await drop_copy(url)
            print(f"floor: {floor}", file=sys.stderr)
        outcomes = [
            await import_file(backend, kind, files[kind], made, args, logs) for kind in args.formats
        ]
        body, notes = table(outcomes, floor, made)
        command = shlex.join(["python", "bench/import.py", *sys.argv[1:]])
        load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
        how = (
            f"`{command}`; {len(made.rows):,} rows ({made.bad:,} bad) on dataset {SIZE}, each"
            " file on a fresh copy of the dataset (dry run, then the import into a new group);"
            f" jobs polled every {args.poll} s; load average {load} at the end"
        )
        section = (f"{backend}, size {SIZE}", how, body + "\n\n" + " ".join(notes))
        if args.results:
            # Each backend's section as soon as it is measured: a later failure keeps it.
            write_results(args.results, [section])
        sections.append(section)
        print(body, file=sys.stderr)
    return sections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--backend", action="append", choices=["postgresql", "sqlite"], help="repeatable"
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--formats", nargs="+", choices=["csv", "xlsx"], default=["csv", "xlsx"])
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between job polls")
    parser.add_argument("--job-timeout", type=float, default=1800.0, help="seconds")
    parser.add_argument("--floor-runs", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="run the worker under cProfile, into DIR")
    parser.add_argument("--logs", type=Path, help="folder for the processes' logs")
    parser.add_argument("--results", type=Path, help="append a section to this file")
    args = parser.parse_args()
    args.backend = args.backend or ["postgresql", "sqlite"]
    logs = args.logs or Path(tempfile.mkdtemp(prefix="bench-import-"))
    logs.mkdir(parents=True, exist_ok=True)
    print(f"logs in {logs}", file=sys.stderr)
    # `timeout`, `kill` or make's end: stop the processes and drop the copy all the same.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        sections = asyncio.run(run(args, logs))
    except BenchError as error:
        traceback.print_exc()
        sys.exit(f"error: {error}")
    for title, how, body in sections:
        print(f"\n### {title}\n\n{how}\n\n{body}")


if __name__ == "__main__":
    main()
