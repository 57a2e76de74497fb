"""Benchmark datasets S, M and L (bench/README.md), generated deterministically.

Rows are bulk-inserted straight into the tables, like a database restore: the
membership history is not written, and no notifications would be sent. Composites
and dynamic groups go through the group service so their rules (no cycles) hold.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.groups.derived import rebuild
from graphql_api.groups.lifecycle import create_group
from graphql_api.groups.models import Group, Membership, MembershipSource
from graphql_api.kernel.access import EVERY_PERMISSION, SYSTEM, Principal
from graphql_api.kernel.db import create_engine, create_sessionmaker
from graphql_api.kernel.validation import name_key
from graphql_api.seeding.demo import CITIES, FIRST_NAMES, LAST_NAMES, STREETS
from graphql_api.users.accounts import create_user
from graphql_api.users.models import User
from graphql_api.users.staff_roles import ADMIN, role_named

CHUNK = 5_000


@dataclass(frozen=True)
class Size:
    contacts: int
    static_groups: int
    memberships: int
    composites_per_level: tuple[int, ...]
    dynamic_groups: int


SIZES = {
    "S": Size(10_000, 100, 30_000, (8, 6, 4, 2), 5),
    "M": Size(100_000, 1_000, 300_000, (40, 25, 15, 12, 8), 20),
    "L": Size(1_000_000, 3_000, 3_000_000, (80, 50, 35, 20, 15), 20),
}


@contextmanager
def progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr while the block runs, when stderr is a terminal (a log or
    a pipe gets none); the block calls what it gets with each count of rows done."""
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda count: bar.advance(task, count)


async def seed_size(database_url: str, size_name: str) -> bool:
    """Fill an empty database with dataset ``size_name``; False if it already holds data."""
    size = SIZES[size_name]
    engine = create_engine(database_url)
    try:
        # Rows go in by the thousand; derived members are stored once, at the end.
        sessions = create_sessionmaker(engine, {"bulk_load": True})
        async with sessions() as session, session.begin():
            if await session.scalar(select(func.count()).select_from(User)):
                return False
            admin_role = await role_named(session, ADMIN)
            assert admin_role is not None, "the migrations write the built-in admin role"
            values = {"name": "Benchmark", "email": "bench@example.coop", "role_id": admin_role.id}
            user, _ = await create_user(session, SYSTEM, values)
            admin = Principal(user.name, frozenset({EVERY_PERMISSION}), user_id=user.id)
        rng = random.Random(8)
        async with sessions() as session, session.begin():
            await _bulk(session, Contact, size.contacts, "contacts", lambda i: _contact(rng, i))
            contact_ids = list(await session.scalars(select(Contact.id).order_by(Contact.id)))
        static_ids = await _static_groups(sessions, size, user.id, contact_ids, rng)
        async with sessions() as session, session.begin():
            await _derived_groups(session, size, admin, static_ids, rng)
        async with create_sessionmaker(engine)() as session, session.begin():
            await rebuild(session, cause="the dataset was loaded", record=False)
        async with engine.connect() as connection:
            # Fresh statistics, or the planners guess badly about the bulk-loaded tables.
            await connection.execute(text("ANALYZE"))
            await connection.commit()
        return True
    finally:
        await engine.dispose()


async def _bulk(
    session: AsyncSession, model: Any, total: int, label: str, row: Callable[[int], dict[str, Any]]
) -> None:
    with progress(label, total) as advance:
        for start in range(0, total, CHUNK):
            rows = [row(i) for i in range(start, min(start + CHUNK, total))]
            await session.execute(insert(model), rows)
            advance(len(rows))


EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def _contact(rng: random.Random, index: int) -> dict[str, Any]:
    city, prefix = rng.choice(CITIES)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {
        "kind": "PERSON",
        "first_name": first,
        "last_name": last,
        "email": f"{first}.{index}@example.nl".lower() if index % 7 else None,
        "street": f"{rng.choice(STREETS)} {rng.randrange(1, 300)}",
        "postal_code": f"{prefix}{rng.randrange(10, 99)} {rng.choice('ABCDEFGH')}"
        f"{rng.choice('KLMNPR')}",
        "city": city,
        "created_at": EPOCH + timedelta(minutes=index * 7),
        "updated_at": EPOCH + timedelta(minutes=index * 7),
    }


def group_sizes(size: Size) -> list[int]:
    """Skewed sizes (a few big groups, many small ones) that add up to ``memberships``."""
    weights = [1 / (i + 1) ** 0.9 for i in range(size.static_groups)]
    scale = size.memberships / sum(weights)
    return [max(3, min(size.contacts, int(w * scale))) for w in weights]


async def _static_groups(
    sessions: Any, size: Size, admin_id: int, contact_ids: list[int], rng: random.Random
) -> list[int]:
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        await _bulk(
            session,
            Group,
            size.static_groups,
            "groups",
            lambda i: {
                "name": f"Groep {i:04d}",
                "name_key": name_key(f"Groep {i:04d}"),
                "kind": "STATIC",
                "composition_mode": "ANY",
                "responsible_id": admin_id,
                "created_by_id": admin_id,
                "show_on_portal": False,
                "show_on_contact": i % 3 == 0,
                "editable_on_portal": False,
                "email_on_new_member": False,
                "closed": i % 10 == 9,
                "created_at": now,
                "updated_at": now,
            },
        )
        ids = list(await session.scalars(select(Group.id).order_by(Group.id)))
    sizes = group_sizes(size)
    pairs = [
        (group_id, contact_id)
        for group_id, count in zip(ids, sizes, strict=True)
        for contact_id in rng.sample(contact_ids, count)
    ]
    async with sessions() as session, session.begin():
        await _bulk(
            session,
            Membership,
            len(pairs),
            "memberships",
            lambda i: {
                "group_id": pairs[i][0],
                "contact_id": pairs[i][1],
                "member_since": now,
                "added_by_id": admin_id,
                "source": MembershipSource.IMPORT,
            },
        )
    return ids


async def _derived_groups(
    session: AsyncSession,
    size: Size,
    admin: Principal,
    static_ids: Sequence[int],
    rng: random.Random,
) -> None:
    with progress("composites", sum(size.composites_per_level)) as advance:
        await _composites(session, size, admin, static_ids, rng, advance)
    with progress("dynamic", size.dynamic_groups) as advance:
        await _dynamic_groups(session, size, admin, static_ids, rng, advance)


async def _composites(
    session: AsyncSession,
    size: Size,
    admin: Principal,
    static_ids: Sequence[int],
    rng: random.Random,
    advance: Callable[[int], None],
) -> None:
    available = list(static_ids)
    number = 0
    for level, count in enumerate(size.composites_per_level, start=1):
        made = []
        for _ in range(count):
            included = rng.sample(available if level > 1 else static_ids, rng.randint(2, 5))
            excluded = rng.sample(static_ids, 1) if rng.random() < 0.3 else []
            excluded = [g for g in excluded if g not in included]
            group = await create_group(
                session,
                admin,
                {
                    "name": f"Samengesteld {level}.{number:03d}",
                    "composed_of_ids": included,
                    "excluded_group_ids": excluded,
                    "composition_mode": "ALL" if rng.random() < 0.25 else "ANY",
                    "show_on_contact": rng.random() < 0.5,
                },
            )
            made.append(group.id)
            number += 1
            advance(1)
        available = made + rng.sample(static_ids, 10)


async def _dynamic_groups(
    session: AsyncSession,
    size: Size,
    admin: Principal,
    static_ids: Sequence[int],
    rng: random.Random,
    advance: Callable[[int], None],
) -> None:
    for index in range(size.dynamic_groups):
        city, prefix = CITIES[index % len(CITIES)]
        conditions = [
            {"condition": {"field": "postalCode", "op": "STARTS_WITH", "value": prefix}},
            {
                "condition": {
                    "field": "memberOf",
                    "op": "EQ",
                    "value": str(rng.choice(static_ids[:50])),
                }
            },
        ]
        tree = {"all": conditions} if index % 2 else {"any": conditions}
        if index % 3 == 0:
            tree = {"all": [tree, {"not": {"condition": {"field": "email", "op": "IS_EMPTY"}}}]}
        await create_group(
            session,
            admin,
            {"name": f"Dynamisch {index:02d} {city}", "filter": tree, "show_on_contact": True},
        )
        advance(1)
