"""Benchmark: exports over HTTP, against a real `graphql-api serve` on PostgreSQL, with
PostgreSQL's own ``COPY (SELECT ...) TO STDOUT`` of the same rows as the floor:

- the members of the largest group of dataset S, M or L;
- with ``--report``, the contacts x groups report of 20 groups over 1,000,000 contacts,
  in a database of its own (``bench_report_1m``), seeded once by set-based SQL and kept.

For CSV and XLSX: the time to the first byte, the time to the last, rows per second, the
size and the server's peak resident memory during that download (its VmHWM, reset
before each); for the floor the same from the first and last chunk COPY sends.

    python bench/export.py --size M
    python bench/export.py --size L --results bench/RESULTS-import.md
    python bench/export.py --report --results bench/RESULTS-import.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import POSTGRES_SERVER, append_results, database_url, ensure_dataset
from bench.serving import cli, process_tree, start_server
from graphql_api.graphql_base.relay import to_global_id
from graphql_api.groups.models import Group
from graphql_api.kernel.db import create_engine
from graphql_api.kernel.validation import name_key
from graphql_api.seeding.demo import CITIES, FIRST_NAMES, LAST_NAMES, STREETS
from graphql_api.settings import Settings

FIELDS = "id,firstName,lastName,email,postalCode,city,memberSince"
REPORT_FIELDS = "id,firstName,lastName,email,postalCode,city"
FLOOR = """
SELECT c.id, c.first_name, c.last_name, c.email, c.postal_code, c.city, m.{since}
FROM {table} m JOIN contacts c ON c.id = m.contact_id
WHERE m.group_id = {group} ORDER BY m.contact_id
"""
"""Sent as ``COPY (...) TO STDOUT WITH (FORMAT csv, HEADER)``."""
REPORT_FLOOR = """
SELECT c.id, c.first_name, c.last_name, c.email, c.postal_code, c.city, {days}
FROM contacts c JOIN memberships m ON m.contact_id = c.id
WHERE m.group_id IN ({groups}) GROUP BY c.id ORDER BY c.id
"""
REPORT_DAY = "(max(m.member_since) FILTER (WHERE m.group_id = {group}) AT TIME ZONE '{zone}')::date"
EXPORT_HEADING = "## Export"
HEADER = "| what | rows | first byte (s) | all (s) | rows/s | MB | peak RSS (MB) | all / floor |"

REPORT_DATABASE = "bench_report_1m"
REPORT_CONTACTS = 1_000_000
REPORT_GROUPS = 20
LAYOUTS = {
    "overlapping": "each contact in one group, every third in a second one too",
    "one each": "each contact in exactly one group",
}
"""The report's two sets of 20 static groups, both over all the contacts. The second
gives an XLSX of a million rows: one of the first is refused while the export checks the
sum of its groups' members (1,333,333) against a sheet's rows rather than its contacts."""
SEED_CONTACTS = """
INSERT INTO contacts (kind, first_name, last_name, email, street, postal_code, city,
                      created_at, updated_at)
SELECT 'PERSON', first, last,
       CASE WHEN i % 7 <> 0 THEN lower(first) || '.' || i || '@example.nl' END,
       street || ' ' || (1 + i % 299),
       prefix || (10 + i % 89) || ' ' || substr('ABCDEFGH', 1 + i % 8, 1)
           || substr('KLMNPR', 1 + i / 8 % 6, 1),
       city, moment, moment
FROM (
    SELECT i,
           (CAST(:first AS text[]))[1 + i * 7 % cardinality(CAST(:first AS text[]))] AS first,
           (CAST(:last AS text[]))[1 + i * 13 % cardinality(CAST(:last AS text[]))] AS last,
           (CAST(:street AS text[]))[1 + i % cardinality(CAST(:street AS text[]))] AS street,
           (CAST(:city AS text[]))[1 + i * 3 % cardinality(CAST(:city AS text[]))] AS city,
           (CAST(:prefix AS text[]))[1 + i * 3 % cardinality(CAST(:prefix AS text[]))] AS prefix,
           timestamptz '2020-01-01 00:00+00' + i * interval '7 minutes' AS moment
    FROM generate_series(1, CAST(:contacts AS integer)) AS i
) AS made
"""
SEED_MEMBERSHIPS = """
INSERT INTO memberships (group_id, contact_id, member_since, source)
SELECT (CAST(:groups AS int[]))[1 + which], id,
       timestamptz '2021-01-01 00:00+00' + (id * 37 % 1500) * interval '1 day'
           + id % 86400 * interval '1 second',
       'IMPORT'
FROM (
    SELECT id, id % {n} AS which FROM contacts
    UNION ALL
    -- another of the groups, 1 to n - 1 places further on
    SELECT id, (id % {n} + 1 + id / 3 % ({n} - 1)) % {n} FROM contacts
    WHERE CAST(:overlap AS boolean) AND id % 3 = 0
) AS chosen
"""


class Refused(Exception):
    """The server refused the download (its status and answer)."""


async def largest_group(url: str) -> tuple[int, str, int]:
    """The id, kind and member count of the group with the most members."""
    engine = create_engine(url)
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT id, kind, member_count FROM groups ORDER BY member_count DESC LIMIT 1")
            )
        ).one()
    await engine.dispose()
    return row[0], row[1], row[2]


def _reset_peak(pid: int) -> None:
    """Sets the server's VmHWM back to its VmRSS (Linux 4.0 and later)."""
    for each in process_tree(pid):
        Path(f"/proc/{each}/clear_refs").write_text("5")


def _peak_mb(pid: int) -> float:
    """The server's VmHWM, summed over its processes, in MB (10^6 bytes)."""
    kib = 0
    for each in process_tree(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                kib += int(line.split()[1])
    return kib * 1024 / 1e6


async def download(
    url: str, token: str, pid: int, path: str, params: dict[str, str]
) -> dict[str, Any]:
    """One download read to its end, timed, with the server's peak memory meanwhile."""
    _reset_peak(pid)
    started = time.perf_counter()
    first = None
    size = 0
    lines = 0
    async with (
        httpx.AsyncClient(base_url=url, timeout=600) as http,
        http.stream(
            "GET", path, params=params, headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        if response.status_code != 200:
            errors = json.loads(await response.aread())["errors"]
            said = "; ".join(f"{e.get('code', '')} {e['message']}" for e in errors)
            raise Refused(f"{response.status_code} {said}")
        async for chunk in response.aiter_raw():
            first = first or time.perf_counter()
            size += len(chunk)
            lines += chunk.count(b"\n")
    done = time.perf_counter()
    return {
        "first": (first or done) - started,
        "all": done - started,
        "bytes": size,
        "lines": lines,
        "rss": _peak_mb(pid),
    }


async def floor(url: str, query: str) -> dict[str, Any]:
    connection = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(False)
    )
    marks: dict[str, Any] = {"first": None, "bytes": 0}
    started = time.perf_counter()

    async def taken(chunk: bytes) -> None:
        marks["first"] = marks["first"] or time.perf_counter()
        marks["bytes"] += len(chunk)

    await connection.copy_from_query(query.strip(), output=taken, format="csv", header=True)
    done = time.perf_counter()
    await connection.close()
    return {"first": marks["first"] - started, "all": done - started, "bytes": marks["bytes"]}


def row(what: str, rows: int, measured: dict[str, Any], floor_all: float | None = None) -> str:
    rss = f"{measured['rss']:.0f}" if "rss" in measured else "-"
    ratio = f"{measured['all'] / floor_all:.1f}" if floor_all else "-"
    return (
        f"| {what} | {rows:,} | {measured['first']:.3f} | {measured['all']:.2f} "
        f"| {rows / measured['all']:,.0f} | {measured['bytes'] / 1e6:.1f} | {rss} | {ratio} |"
    )


def _environment(url: str) -> tuple[dict[str, str], str]:
    """The server's environment on ``url`` and a new staff token, the database brought to
    the installed plugins' schema too (which serve loads)."""
    env = {**os.environ, "GRAPHQL_API_DATABASE_URL": url, "GRAPHQL_API_DEV_MODE": "false"}
    cli(env, "migrate")
    token = cli(
        env, "create-user", "--name", "Bench", "--email", f"bench-{time.time_ns()}@example.coop"
    ).split()[-1]
    return env, token


async def _served(
    url: str, cases: Sequence[tuple[str, str, dict[str, str]]]
) -> dict[str, dict[str, Any] | str]:
    """Each case (name, path, query) downloaded from one `serve`, in turn: its figures, or
    the server's answer when it refused it."""
    env, token = _environment(url)
    measured: dict[str, dict[str, Any] | str] = {}
    with tempfile.TemporaryDirectory() as folder:
        server_url, server = start_server(env, Path(folder) / "serve.log")
        try:
            for name, path, params in cases:
                try:
                    measured[name] = await download(server_url, token, server.pid, path, params)
                except Refused as refused:
                    measured[name] = str(refused)
        finally:
            server.stop()
    return measured


async def members(size: str) -> str:
    url = database_url("postgresql", size)
    await ensure_dataset(url, size)
    group, kind, count = await largest_group(url)
    params = {"groupId": to_global_id("Group", group), "fields": FIELDS}
    cases = [(f, "/exports/group-members", {**params, "format": f}) for f in ("csv", "xlsx")]
    measured = await _served(url, cases)
    table, since = (
        ("memberships", "member_since") if kind == "STATIC" else ("derived_memberships", "since")
    )
    copied = await floor(url, FLOOR.format(table=table, since=since, group=group))
    lines = [HEADER, "|---|---|---|---|---|---|---|---|"]
    for format, result in measured.items():
        assert isinstance(result, dict), result
        if format == "csv" and result["lines"] != count + 1:
            raise RuntimeError(f"{result['lines'] - 1} rows, not {count}")
        lines.append(
            row(f"{format.upper()} over HTTP ({kind} group)", count, result, copied["all"])
        )
    lines.append(row("COPY ... TO STDOUT (floor)", count, copied))
    return "\n".join(lines)


async def ensure_report_dataset(url: str) -> None:
    """The report's database, created, migrated and seeded the first time."""
    admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        exists = await connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": REPORT_DATABASE}
        )
        if not exists:
            await connection.execute(text(f'CREATE DATABASE "{REPORT_DATABASE}"'))
    await admin.dispose()
    cli({**os.environ, "GRAPHQL_API_DATABASE_URL": url}, "migrate")
    engine = create_engine(url)
    async with engine.connect() as connection:
        seeded = await connection.scalar(text("SELECT EXISTS (SELECT 1 FROM contacts)"))
    if seeded:
        await engine.dispose()
        return
    async with engine.begin() as connection:
        started = time.perf_counter()
        await connection.execute(
            text(SEED_CONTACTS),
            {
                "first": FIRST_NAMES,
                "last": LAST_NAMES,
                "street": STREETS,
                "city": [city for city, _ in CITIES],
                "prefix": [prefix for _, prefix in CITIES],
                "contacts": REPORT_CONTACTS,
            },
        )
        for layout in LAYOUTS:
            names = [f"Report {layout} {i:02d}" for i in range(1, REPORT_GROUPS + 1)]
            ids = await connection.scalars(
                insert(Group).returning(Group.id),
                [{"name": name, "name_key": name_key(name)} for name in names],
            )
            await connection.execute(
                text(SEED_MEMBERSHIPS.format(n=REPORT_GROUPS)),
                {"groups": list(ids), "overlap": layout == "overlapping"},
            )
        await connection.execute(
            text(
                "UPDATE groups SET member_count = counted.n FROM (SELECT group_id, count(*) AS n"
                " FROM memberships GROUP BY group_id) AS counted WHERE groups.id = counted.group_id"
            )
        )
    await engine.dispose()
    # Fresh statistics and visibility map, as a restore followed by its routine would leave.
    vacuum = create_engine(url, isolation_level="AUTOCOMMIT")
    async with vacuum.connect() as connection:
        await connection.execute(text("VACUUM ANALYZE"))
    await vacuum.dispose()
    print(f"seeded {REPORT_DATABASE} in {time.perf_counter() - started:.0f} s", file=sys.stderr)


async def _report_groups(url: str, layout: str) -> tuple[list[int], int, int]:
    """A layout's group ids, the contacts in any of them and their memberships."""
    engine = create_engine(url)
    async with engine.connect() as connection:
        ids = list(
            await connection.scalars(
                text("SELECT id FROM groups WHERE name LIKE :n ORDER BY id"),
                {"n": f"Report {layout} %"},
            )
        )
        contacts, memberships = (
            await connection.execute(
                text(
                    "SELECT count(DISTINCT contact_id), count(*) FROM memberships"
                    " WHERE group_id = ANY(:ids)"
                ),
                {"ids": ids},
            )
        ).one()
    await engine.dispose()
    return ids, contacts, memberships


async def report() -> str:
    url = make_url(POSTGRES_SERVER).set(database=REPORT_DATABASE).render_as_string(False)
    await ensure_report_dataset(url)
    zone = Settings().timezone
    lines = [HEADER, "|---|---|---|---|---|---|---|---|"]
    for layout, how in LAYOUTS.items():
        ids, contacts, memberships = await _report_groups(url, layout)
        params = {
            "groupIds": ",".join(to_global_id("Group", i) for i in ids),
            "fields": REPORT_FIELDS,
        }
        cases = [(f, "/exports/group-report", {**params, "format": f}) for f in ("csv", "xlsx")]
        measured = await _served(url, cases)
        days = ", ".join(REPORT_DAY.format(group=i, zone=zone) for i in ids)
        query = REPORT_FLOOR.format(days=days, groups=", ".join(map(str, ids)))
        copied = await floor(url, query)
        what = f"{len(ids)} groups, {how} ({memberships:,} memberships)"
        for format, result in measured.items():
            if isinstance(result, str):
                lines.append(f"| {format.upper()}, {what} | refused: {result} | | | | | | |")
                continue
            if format == "csv" and result["lines"] != contacts + 1:
                raise RuntimeError(f"{result['lines'] - 1} rows, not {contacts}")
            lines.append(row(f"{format.upper()}, {what}", contacts, result, copied["all"]))
        lines.append(row(f"COPY ... TO STDOUT (floor), {layout}", contacts, copied))
    return "\n".join(lines)


def add_under_export(path: Path, title: str, how: str, table: str) -> None:
    """A run's table at the end of the file's "## Export" part: the file has other parts
    (another benchmark's "## Import"), so appending at its end would put it under those."""
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder) / "run.md"
        append_results(scratch, title, how, table)
        section = scratch.read_text()
    text = path.read_text() if path.exists() else ""
    if EXPORT_HEADING not in text:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"{EXPORT_HEADING}\n"
    start = text.index(EXPORT_HEADING) + len(EXPORT_HEADING)
    end = text.find("\n## ", start)
    end = len(text) if end < 0 else end
    path.write_text(text[:end].rstrip("\n") + "\n" + section + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["S", "M", "L"], default="M")
    parser.add_argument(
        "--report",
        action="store_true",
        help=f"the report of {REPORT_GROUPS} groups over {REPORT_CONTACTS:,} contacts instead",
    )
    parser.add_argument(
        "--results", type=Path, help=f'add the table to this file, under "{EXPORT_HEADING}"'
    )
    args = parser.parse_args()
    table = asyncio.run(report() if args.report else members(args.size))
    print(table)
    if args.results:
        command = "python " + " ".join(["bench/export.py", *sys.argv[1:]])
        if args.report:
            title = f"postgresql, report over {REPORT_CONTACTS:,} contacts"
            how = f"`{command}`: each layout's {REPORT_GROUPS} groups, fields {REPORT_FIELDS}"
        else:
            title = f"postgresql, size {args.size}"
            how = f"`{command}`: the largest group's members, fields {FIELDS}"
        add_under_export(args.results, title, how + ", once each, after no warm-up", table)


if __name__ == "__main__":
    main()
