"""Benchmark: each query through the whole GraphQL stack against the raw-SQL floor.

One process, one run: every query is sent as a real HTTP request through Starlette and
Strawberry (in-process ASGI), and the same answer is read with hand-written SQL on the
same driver. Both answers must be equal. Prints p50, p95, their ratio and the number of
SQL statements the GraphQL request issued.

    python bench/run.py --backend sqlite --size M
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.floor import Floor, load_definitions
from graphql_api.graphql_base.relay import parse_global_id, to_global_id
from graphql_api.kernel.access import SYSTEM
from graphql_api.kernel.db import create_engine, create_sessionmaker
from graphql_api.migrations.runner import upgrade
from graphql_api.seeding.datasets import seed_size
from graphql_api.settings import Settings
from graphql_api.users.models import User
from graphql_api.users.tokens import issue_token
from graphql_api.web.app import create_app

POSTGRES_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def database_url(backend: str, size: str) -> str:
    if backend == "sqlite":
        path = Path("data") / f"bench-{size}.sqlite3"
        return f"sqlite+aiosqlite:///{path}"
    return make_url(POSTGRES_SERVER).set(database=f"bench_{size.lower()}").render_as_string(False)


async def ensure_dataset(url: str, size: str) -> None:
    """Create, migrate and seed the benchmark database the first time."""
    if url.startswith("postgresql"):
        admin = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
        name = make_url(url).database
        async with admin.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            )
            if not exists:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    if await seed_size(url, size):
        print(f"seeded dataset {size}", file=sys.stderr)
        if url.startswith("postgresql"):
            # Freshly loaded tables have no statistics and no visibility map yet: the
            # floor's set queries then ran past the statement timeout on a new machine.
            vacuum = create_engine(url, isolation_level="AUTOCOMMIT")
            async with vacuum.connect() as connection:
                await connection.execute(text("VACUUM ANALYZE"))
            await vacuum.dispose()


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1


async def timed(work: Callable[[], Awaitable[Any]], iterations: int) -> tuple[list[float], Any]:
    result = None
    for _ in range(3):
        result = await work()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        result = await work()
        samples.append((time.perf_counter() - started) * 1000)
    return samples, result


def pk(global_id: str) -> int:
    parsed = parse_global_id(global_id)
    assert parsed is not None
    return parsed[1]


async def run(
    backend: str, size: str, iterations: int, only: str | None = None
) -> list[dict[str, Any]]:
    url = database_url(backend, size)
    await ensure_dataset(url, size)
    app = create_app(Settings(database_url=url))
    engine = app.state.engine
    async with create_sessionmaker(engine)() as session, session.begin():
        user = await session.scalar(text("SELECT id FROM users ORDER BY id LIMIT 1"))
        _, token = await issue_token(session, SYSTEM, await session.get(User, user), name="bench")
    counter = Counter()
    event.listen(engine.sync_engine, "before_cursor_execute", counter)
    transport = httpx.ASGITransport(app=app)
    http = httpx.AsyncClient(transport=transport, base_url="http://bench")
    headers = {"Authorization": f"Bearer {token}"}

    async def graphql(query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async with engine.connect() as connection:
        definitions = await load_definitions(connection)
    floor = Floor(definitions)

    async def sql(statement: str) -> list[tuple[Any, ...]]:
        async with engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(text(statement))]

    composites = [g for g, d in definitions.items() if d.kind == "COMPOSITE"]
    counts = await sql(
        " UNION ALL ".join(
            f"SELECT {g}, count(*) FROM ({floor.members(g)}) AS c{g}" for g in composites
        )
    )
    largest = max(counts, key=lambda row: row[1])[0]
    dynamic = min(g for g, d in definitions.items() if d.kind == "DYNAMIC")
    member = (await sql(f"SELECT min(contact_id) FROM ({floor.members(largest)}) AS m"))[0][0]
    busiest = (
        await sql(
            "SELECT contact_id FROM memberships GROUP BY contact_id ORDER BY count(*) DESC, contact_id LIMIT 1"
        )
    )[0][0]

    def members_page(group_id: int) -> tuple[Callable, Callable, str, dict[str, Any]]:
        query = """query($id: ID!) { group(id: $id) { members(first: 100) {
            edges { node { id displayName } } } } }"""

        async def through_graphql() -> list[int]:
            data = await graphql(query, {"id": to_global_id("Group", group_id)})
            return [pk(e["node"]["id"]) for e in data["group"]["members"]["edges"]]

        async def through_sql() -> list[int]:
            rows = await sql(
                "SELECT id, first_name, last_name FROM contacts WHERE id IN "
                f"({floor.members(group_id)}) ORDER BY id LIMIT 100"
            )
            return [row[0] for row in rows]

        return through_graphql, through_sql, query, {}

    async def name_graphql() -> str:
        data = await graphql(
            "query($id: ID!) { group(id: $id) { name } }", {"id": to_global_id("Group", largest)}
        )
        return data["group"]["name"]

    async def name_sql() -> str:
        return (await sql(f"SELECT name FROM groups WHERE id = {largest}"))[0][0]

    async def count_graphql() -> int:
        data = await graphql(
            "query($id: ID!) { group(id: $id) { memberCount } }",
            {"id": to_global_id("Group", largest)},
        )
        return data["group"]["memberCount"]

    async def count_sql() -> int:
        return (await sql(f"SELECT count(*) FROM ({floor.members(largest)}) AS m"))[0][0]

    async def has_graphql() -> bool:
        data = await graphql(
            "query($id: ID!, $c: ID!) { group(id: $id) { hasMember(contactId: $c) } }",
            {"id": to_global_id("Group", largest), "c": to_global_id("Contact", member)},
        )
        return data["group"]["hasMember"]

    async def has_sql() -> bool:
        rows = await sql(f"SELECT EXISTS ({floor.members(largest, contact=member)})")
        return bool(rows[0][0])

    async def groups_graphql() -> list[int]:
        data = await graphql(
            "query($id: ID!) { contact(id: $id) { groups { id name } } }",
            {"id": to_global_id("Contact", busiest)},
        )
        return [pk(g["id"]) for g in data["contact"]["groups"]]

    async def groups_sql() -> list[int]:
        derived = [g for g, d in definitions.items() if d.kind != "STATIC"]
        holding = " UNION ALL ".join(
            f"SELECT {g} AS group_id WHERE EXISTS ({floor.members(g, contact=busiest)})"
            for g in derived
        )
        rows = await sql(
            "SELECT g.id FROM groups g WHERE g.id IN (SELECT group_id FROM memberships "
            f"WHERE contact_id = {busiest} UNION ALL {holding}) ORDER BY g.name_key, g.id"
        )
        return [row[0] for row in rows]

    async def list_graphql() -> list[tuple[int, int, str | None]]:
        data = await graphql(
            "{ groups(first: 50) { edges { node { id memberCount responsible { name } } } } }", {}
        )
        return [
            (
                pk(e["node"]["id"]),
                e["node"]["memberCount"],
                (e["node"]["responsible"] or {}).get("name"),
            )
            for e in data["groups"]["edges"]
        ]

    async def list_sql() -> list[tuple[int, int, str | None]]:
        page = await sql(
            "SELECT g.id, g.kind, u.name FROM groups g LEFT JOIN users u ON u.id = g.responsible_id "
            "ORDER BY g.name_key, g.id LIMIT 50"
        )
        statics = [row[0] for row in page if row[1] == "STATIC"]
        counts: dict[int, int] = {}
        if statics:
            ids = ", ".join(map(str, statics))
            counts.update(
                await sql(
                    f"SELECT group_id, count(*) FROM memberships WHERE group_id IN ({ids}) GROUP BY group_id"
                )
            )
        derived = [row[0] for row in page if row[1] != "STATIC"]
        if derived:
            counts.update(
                await sql(
                    " UNION ALL ".join(
                        f"SELECT {g}, count(*) FROM ({floor.members(g)}) AS c{g}" for g in derived
                    )
                )
            )
        return [(row[0], counts.get(row[0], 0), row[2]) for row in page]

    cases: list[tuple[str, Callable, Callable]] = [
        ("one group's name (the fixed cost)", name_graphql, name_sql),
        ("member page of 100, largest composite", *members_page(largest)[:2]),
        ("memberCount, largest composite", count_graphql, count_sql),
        ("hasMember, largest composite", has_graphql, has_sql),
        ("a contact's groups", groups_graphql, groups_sql),
        ("groups(first: 50) memberCount responsible", list_graphql, list_sql),
        ("member page of 100, dynamic group", *members_page(dynamic)[:2]),
    ]
    results = []
    for name, through_graphql, through_sql in cases:
        if only and only not in name:
            continue
        floor_samples, floor_answer = await timed(through_sql, iterations)
        await through_graphql()  # the token is checked and cached, as in steady use
        counter.count = 0
        graphql_answer = await through_graphql()
        statements = counter.count
        api_samples, api_answer = await timed(through_graphql, iterations)
        assert api_answer == floor_answer == graphql_answer, (name, api_answer, floor_answer)
        floor_p50 = statistics.median(floor_samples)
        api_p50 = statistics.median(api_samples)
        results.append(
            {
                "query": name,
                "floor_p50": floor_p50,
                "floor_p95": percentile(floor_samples, 95),
                "api_p50": api_p50,
                "api_p95": percentile(api_samples, 95),
                "ratio": api_p50 / floor_p50,
                "statements": statements,
                "answer": summary(api_answer),
            }
        )
        print(format_row(results[-1]), file=sys.stderr)
    await http.aclose()
    await engine.dispose()
    return results


def percentile(samples: list[float], pct: int) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def summary(answer: Any) -> str:
    if isinstance(answer, list):
        return f"{len(answer)} rows"
    return json.dumps(answer)


HEADER = "| query | floor p50 ms | floor p95 ms | API p50 ms | API p95 ms | ratio p50 | SQL statements | answer |"


def format_row(row: dict[str, Any]) -> str:
    return (
        f"| {row['query']} | {row['floor_p50']:.2f} | {row['floor_p95']:.2f} | {row['api_p50']:.2f} "
        f"| {row['api_p95']:.2f} | {row['ratio']:.2f}x | {row['statements']} | {row['answer']} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--size", choices=["S", "M", "L"], default="M")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--only", help="run only the queries whose name contains this text")
    parser.add_argument("--results", type=Path, help="append a markdown table to this file")
    args = parser.parse_args()
    results = asyncio.run(run(args.backend, args.size, args.iterations, args.only))
    table = "\n".join([HEADER, "|---|---|---|---|---|---|---|---|", *map(format_row, results)])
    print(table)
    if args.results:
        how = f"{args.iterations} timed runs per query after 3 warm-up runs"
        append_results(args.results, f"{args.backend}, size {args.size}", how, table)


def append_results(path: Path, title: str, how: str, table: str) -> None:
    """Add one run's table to a results file, dated and with the machine it ran on."""
    machine = f"{platform.processor() or platform.machine()}, {platform.python_version()}"
    with path.open("a") as out:
        out.write(
            f"\n### {title}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
            f"{how}; {machine}.\n\n{table}\n"
        )


if __name__ == "__main__":
    main()
