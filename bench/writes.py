"""Benchmark: what keeping derived membership exact costs a write.

Each write runs through the domain services in a transaction that is rolled back after
it, so every run starts from the same dataset. Reported: the time of the write (p50 over
the runs), and the derived entries and exits it stored, as history rows and outbox events.

    python bench/writes.py --backend postgresql --size L --results bench/RESULTS-writes.md
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import append_results, database_url, ensure_dataset
from graphql_api.contacts.models import Contact
from graphql_api.contacts.service import update_contact
from graphql_api.groups.derived import readers_of
from graphql_api.groups.lifecycle import create_group, update_group
from graphql_api.groups.membership_writes import add_members
from graphql_api.groups.models import (
    Group,
    GroupKind,
    GroupLink,
    LinkRole,
    Membership,
    MembershipEvent,
    MembershipSource,
)
from graphql_api.kernel.access import SYSTEM
from graphql_api.kernel.db import create_engine, create_sessionmaker
from graphql_api.notifications.models import OutboxEvent
from graphql_api.notifications.outbox import write_pending
from graphql_api.settings import Settings
from graphql_api.web.app import load_plugins

Write = Callable[[AsyncSession], Awaitable[Any]]


async def _count(session: AsyncSession, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def measure(
    sessions: Any, prepare: Write, write: Write, runs: int
) -> tuple[list[float], int, int]:
    """Run ``prepare`` then time ``write``, ``runs`` times, each in a transaction rolled
    back afterwards; the history rows and outbox events the last write added."""
    samples, history, events = [], 0, 0
    for _ in range(runs):
        async with sessions() as session, session.begin():
            await prepare(session)
            before = (
                await _count(session, MembershipEvent),
                await _count(session, OutboxEvent),
            )
            started = time.perf_counter()
            await write(session)
            # Events are written at commit; this transaction rolls back, so write them now.
            await session.run_sync(write_pending)
            await session.flush()
            samples.append((time.perf_counter() - started) * 1000)
            history = await _count(session, MembershipEvent) - before[0]
            events = await _count(session, OutboxEvent) - before[1]
            await session.rollback()
    return samples, history, events


async def run(backend: str, size: str, runs: int) -> list[dict[str, Any]]:
    url = database_url(backend, size)
    await ensure_dataset(url, size)
    plugins = load_plugins(Settings(database_url=url))
    engine = create_engine(url)
    sessions = create_sessionmaker(
        engine, {"rules": plugins.rules(), "permissions": plugins.permissions}
    )
    async with sessions() as session:
        largest = await session.scalar(
            select(Group.id)
            .where(Group.kind == GroupKind.COMPOSITE)
            .order_by(Group.member_count.desc())
            .limit(1)
        )
        static = await session.scalar(
            select(GroupLink.member_group_id)
            .join(Group, Group.id == GroupLink.member_group_id)
            .where(Group.kind == GroupKind.STATIC, GroupLink.role == LinkRole.INCLUDE)
            .group_by(GroupLink.member_group_id)
            .order_by(func.count().desc())
            .limit(1)
        )
        outsiders = list(
            await session.scalars(
                select(Contact.id)
                .where(
                    Contact.id.not_in(
                        select(Membership.contact_id).where(Membership.group_id == static)
                    )
                )
                .order_by(Contact.id)
                .limit(10_000)
            )
        )
        someone = outsiders[0]
        postal_code = (await session.get(Contact, someone)).postal_code
        readers = await readers_of(session, [static])
        excluded = list(
            await session.scalars(
                select(GroupLink.member_group_id).where(
                    GroupLink.group_id == largest, GroupLink.role == LinkRole.EXCLUDE
                )
            )
        )
        another = await session.scalar(
            select(Group.id)
            .where(Group.kind == GroupKind.STATIC, Group.id.not_in(excluded))
            .order_by(Group.member_count.desc())
            .limit(1)
        )

    async def fifty_composites(session: AsyncSession) -> None:
        for i in range(max(0, 50 - len(readers))):
            await create_group(
                session, SYSTEM, {"name": f"bench over {static} {i}", "composed_of_ids": [static]}
            )

    async def ten_filters(session: AsyncSession) -> None:
        # Narrow filters, so that making them (not timed) stays quick on a million contacts.
        condition = {"condition": {"field": "postalCode", "op": "EQ", "value": postal_code}}
        for i in range(10):
            await create_group(session, SYSTEM, {"name": f"bench filter {i}", "filter": condition})

    async def nothing(_: AsyncSession) -> None:
        return None

    cases: list[tuple[str, Write, Write, int]] = [
        (
            f"add 10,000 contacts to a static group under {max(50, len(readers))} composites",
            fifty_composites,
            lambda s: add_members(s, SYSTEM, static, outsiders, MembershipSource.IMPORT),
            max(1, runs // 5),
        ),
        (
            "edit one contact in 10 dynamic groups, staying in them (its phone)",
            ten_filters,
            lambda s: update_contact(s, SYSTEM, someone, {"phone": "06-12345678"}),
            runs,
        ),
        (
            "edit one contact in 10 dynamic groups, leaving them (its postal code)",
            ten_filters,
            lambda s: update_contact(s, SYSTEM, someone, {"postal_code": "0000 AA"}),
            runs,
        ),
        (
            "exclude one more static group from the largest composite",
            nothing,
            lambda s: update_group(
                s, SYSTEM, largest, {"excluded_group_ids": [*excluded, another]}
            ),
            max(1, runs // 5),
        ),
    ]
    results = []
    for name, prepare, write, count in cases:
        samples, history, events = await measure(sessions, prepare, write, count)
        results.append(
            {
                "write": name,
                "runs": count,
                "p50": statistics.median(samples),
                "max": max(samples),
                "history": history,
                "events": events,
            }
        )
        print(format_row(results[-1]), file=sys.stderr)
    await engine.dispose()
    return results


HEADER = "| write | runs | p50 ms | max ms | derived history rows | outbox events |"


def format_row(row: dict[str, Any]) -> str:
    return (
        f"| {row['write']} | {row['runs']} | {row['p50']:.1f} | {row['max']:.1f} "
        f"| {row['history']:,} | {row['events']:,} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--size", choices=["S", "M", "L"], default="M")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--results", type=Path, help="append a markdown table to this file")
    args = parser.parse_args()
    results = asyncio.run(run(args.backend, args.size, args.runs))
    table = "\n".join([HEADER, "|---|---|---|---|---|---|", *map(format_row, results)])
    print(table)
    if args.results:
        how = f"`python bench/writes.py --backend {args.backend} --size {args.size} --runs {args.runs}`"
        append_results(args.results, f"{args.backend}, size {args.size}", how, table)


if __name__ == "__main__":
    main()
