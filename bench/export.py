"""Benchmark: the members export of the largest group over HTTP, against a real
`graphql-api serve` on a dataset in PostgreSQL, and PostgreSQL's own
``COPY (SELECT ...) TO STDOUT`` of the same rows as the floor.

For CSV and XLSX: the time to the first byte, the time to the last, rows per second and
the size; for the floor the same from the first and last chunk COPY sends.

    python bench/export.py --size M
    python bench/export.py --size L --results bench/RESULTS-export.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import append_results, database_url, ensure_dataset
from bench.serving import cli, start_server
from graphql_api.graphql_base.relay import to_global_id
from graphql_api.kernel.db import create_engine

FIELDS = "id,firstName,lastName,email,postalCode,city,memberSince"
FLOOR = """
SELECT c.id, c.first_name, c.last_name, c.email, c.postal_code, c.city, m.{since}
FROM {table} m JOIN contacts c ON c.id = m.contact_id
WHERE m.group_id = {group} ORDER BY m.contact_id
"""
"""Sent as ``COPY (...) TO STDOUT WITH (FORMAT csv, HEADER)``."""
HEADER = "| what | rows | first byte (s) | all (s) | rows/s | MB |"


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


async def download(url: str, token: str, group: int, format: str) -> dict[str, Any]:
    started = time.perf_counter()
    first = None
    size = 0
    lines = 0
    async with (
        httpx.AsyncClient(base_url=url, timeout=600) as http,
        http.stream(
            "GET",
            "/exports/group-members",
            params={"groupId": to_global_id("Group", group), "fields": FIELDS, "format": format},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        response.raise_for_status()
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
    }


async def floor(url: str, group: int, kind: str) -> dict[str, Any]:
    table, since = (
        ("memberships", "member_since") if kind == "STATIC" else ("derived_memberships", "since")
    )
    query = FLOOR.format(table=table, since=since, group=group)
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


def row(what: str, rows: int, measured: dict[str, Any]) -> str:
    return (
        f"| {what} | {rows:,} | {measured['first']:.3f} | {measured['all']:.2f} "
        f"| {rows / measured['all']:,.0f} | {measured['bytes'] / 1e6:.1f} |"
    )


async def run(size: str) -> str:
    url = database_url("postgresql", size)
    await ensure_dataset(url, size)
    group, kind, members = await largest_group(url)
    env = {**os.environ, "GRAPHQL_API_DATABASE_URL": url, "GRAPHQL_API_DEV_MODE": "false"}
    cli(env, "migrate")  # the installed plugins' tables too, which serve loads
    token = cli(
        env, "create-user", "--name", "Bench", "--email", f"bench-{time.time_ns()}@example.coop"
    ).split()[-1]
    lines = [HEADER, "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder:
        server_url, server = start_server(env, Path(folder) / "serve.log")
        try:
            for format in ("csv", "xlsx"):
                measured = await download(server_url, token, group, format)
                if format == "csv" and measured["lines"] != members + 1:
                    raise RuntimeError(f"{measured['lines'] - 1} rows, not {members}")
                lines.append(row(f"{format.upper()} over HTTP ({kind} group)", members, measured))
        finally:
            server.stop()
    lines.append(row("COPY ... TO STDOUT (floor)", members, await floor(url, group, kind)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["S", "M", "L"], default="M")
    parser.add_argument("--results", type=Path, help="append a markdown table to this file")
    args = parser.parse_args()
    table = asyncio.run(run(args.size))
    print(table)
    if args.results:
        how = "the largest group's members, once each, after no warm-up"
        append_results(args.results, f"postgresql, size {args.size}", how, table)


if __name__ == "__main__":
    main()
