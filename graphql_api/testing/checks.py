"""Checks a test asserts with: what the database holds and whether a block changed it, a
refused mutation, stored membership exact, the outbox delivered, bulk jobs run, the schema
described, a role plugin's promises."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from graphql import GraphQLEnumType, is_specified_scalar_type
from sqlalchemy import text
from starlette.applications import Starlette
from strawberry import Schema

from graphql_api.groups.derived import differences
from graphql_api.jobs.models import Job
from graphql_api.jobs.runner import JobRunner
from graphql_api.jobs.schedules import start_due
from graphql_api.notifications.worker import Worker
from graphql_api.testing.clients import GraphQLClient
from graphql_api.testing.factories import add_members, new_contact_ids, new_group_id
from graphql_api.testing.fixtures import table_keys


async def database_rows(app: Starlette) -> dict[str, list[dict[str, Any]]]:
    """What the app has committed: every row of every table but Alembic's, plugins' tables
    included, read through the app's own engine. Tables by name, each table's rows (column
    name to value) by primary key, so two snapshots are equal exactly when no row was
    added, removed or changed."""
    async with app.state.engine.connect() as connection:
        snapshot = {}
        for name, key in (await connection.run_sync(table_keys)).items():
            columns = ", ".join(f'"{column}"' for column in key)
            order = f" ORDER BY {columns}" if key else ""
            result = await connection.execute(text(f'SELECT * FROM "{name}"{order}'))
            rows = [_without_bookkeeping(name, dict(row)) for row in result.mappings()]
            snapshot[name] = rows if key else sorted(rows, key=repr)
        return snapshot


def _without_bookkeeping(table: str, row: dict[str, Any]) -> dict[str, Any]:
    # Sending a request notes when its token was last used; that changes no data.
    if table == "api_tokens":
        row.pop("last_used_at", None)
    return row


@contextlib.asynccontextmanager
async def unchanged(app: Starlette) -> AsyncIterator[None]:
    """A block that must leave the database as it found it: ``database_rows`` before and
    after are equal (a group with all its settings, its links, memberships, history, the
    outbox, users, plugins' tables)."""
    before = await database_rows(app)
    yield
    assert await database_rows(app) == before, "the database changed"


async def refused(
    app: Starlette, client: GraphQLClient, mutation: str, variables: dict[str, Any]
) -> list[dict[str, Any]]:
    """Run a mutation that must be refused (its payload has errors) and change no row of
    the database (``unchanged``); its errors."""
    async with unchanged(app):
        data = await client.data(mutation, variables)
        payload = next(iter(data.values()))
        assert payload["errors"], f"not refused: {payload}"
    return payload["errors"]


async def membership_differences(app: Starlette) -> list[str]:
    """Every way the stored membership of groups (derived rows, member counts) differs
    from a computation from scratch under ``app``'s rules, in words, as ``graphql-api
    check-membership`` reports it; empty when it is exact. The kit runs it after each test
    in strict mode; ``assert await membership_differences(app) == []`` checks mid-test."""
    async with app.state.sessions() as session:
        return await differences(session)


async def deliver_all(app: Starlette) -> int:
    """Deliver everything the outbox holds for ``app``'s plugins, as the service's worker
    would; how many deliveries were handled."""
    return await make_worker(app).run_until_idle()


def undescribed(schema: Schema) -> list[str]:
    """The types, fields, arguments and enum values of a Strawberry schema without a
    description: the core has none, so a plugin's test can
    ``assert undescribed(app.state.schema) == []``."""
    graphql_schema = schema._schema
    missing = []
    for name, graphql_type in graphql_schema.type_map.items():
        if name.startswith("__") or is_specified_scalar_type(graphql_type):
            continue
        if not graphql_type.description:
            missing.append(name)
        if isinstance(graphql_type, GraphQLEnumType):
            missing += [
                f"{name}.{v}" for v, value in graphql_type.values.items() if not value.description
            ]
        for field_name, field in getattr(graphql_type, "fields", {}).items():
            if not field.description:
                missing.append(f"{name}.{field_name}")
            for argument_name, argument in getattr(field, "args", {}).items():
                if not argument.description:
                    missing.append(f"{name}.{field_name}({argument_name})")
    return missing


def make_worker(app: Starlette, **settings: Any) -> Worker:
    """An outbox worker for ``app``, its settings overridden by ``settings``; tests run it
    with ``run_once`` or ``run_until_idle`` instead of the service's loop."""
    return Worker(
        app.state.sessions, app.state.plugins, app.state.settings.model_copy(update=settings)
    )


def make_job_runner(app: Starlette, name: str | None = None, **settings: Any) -> JobRunner:
    """A runner of ``app``'s bulk jobs (its ``app.state.job_kinds``), its settings
    overridden by ``settings`` (``job_chunk_size=2``); tests run it with ``run_once``,
    ``run_until_idle``, or ``claim`` and ``step`` for one chunk at a time. A failed chunk
    is tried again at once, not after the service's backoff."""
    return JobRunner(
        app.state.sessions,
        app.state.job_kinds,
        app.state.settings.model_copy(update=settings),
        name=name,
        retry_base_seconds=0,
    )


async def run_schedules(app: Starlette, at: datetime | None = None) -> int:
    """Start the jobs of ``app``'s plugins' schedules that are due ``at`` (default: now),
    as a worker would; how many were started. A schedule seen for the first time is due
    one period later: call again with ``at`` that far on."""
    return await start_due(app.state.sessions, app.state.plugins.scheduled_jobs, at)


async def run_jobs(app: Starlette, **settings: Any) -> int:
    """Run every due bulk job of ``app`` to its end, as the service's workers would; how
    many runs it took (a job retried after a fault counts again)."""
    return await make_job_runner(app, **settings).run_until_idle()


async def check_role_plugin(
    client: GraphQLClient, role: str, label_en: str, holders_field: str, flag_field: str
) -> None:
    """What every ``RolePlugin`` promises: the role is registered, a member of a group
    with the role is listed in ``holders_field`` and flagged in ``flag_field``, and a
    contact outside is neither; the flag is a merge field of templates."""
    roles = await client.data('{ roles { key label(locale: "en") } }')
    assert {"key": role, "label": label_en} in roles["roles"]
    group = await new_group_id(client, name=f"Groep {role}", neighbourhoodRole=role)
    holder, other = await new_contact_ids(client, "Houder", "Ander")
    assert (await add_members(client, group, [holder]))["changedCount"] == 1
    data = await client.data(
        f"query($h: ID!, $o: ID!) {{ {holders_field} {{ totalCount nodes {{ lastName }} }} "
        f"h: contact(id: $h) {{ {flag_field} }} o: contact(id: $o) {{ {flag_field} }} }}",
        {"h": holder, "o": other},
    )
    assert data[holders_field] == {"totalCount": 1, "nodes": [{"lastName": "Houder"}]}
    assert data["h"][flag_field] is True and data["o"][flag_field] is False
    # The flag is a merge field of e-mail templates too.
    saved = await client.data(
        'mutation($b: String!) { createEmailTemplate(input: {name: $b, subject: "Hallo", '
        "body: $b}) { errors { message } } }",
        {"b": f"{{% if contact.{flag_field} %}}Dag {role}{{% endif %}}"},
    )
    assert saved["createEmailTemplate"]["errors"] == []


async def job_row(app: Starlette, job_id: int) -> Job:
    """The job's row as it is committed now."""
    async with app.state.sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None, f"no job {job_id}"
        return job


async def wait_for_job(
    app: Starlette, job_id: int, done: Callable[[Job], bool], seconds: float
) -> Job:
    """The job's row once ``done(job)`` holds (a job run by another process: a
    ``graphql-api worker``); fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    job = await job_row(app, job_id)
    while not done(job):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"job {job_id} did not get there: {job.state} {job.done}/{job.total}"
            )
        await asyncio.sleep(0.02)
        job = await job_row(app, job_id)
    return job
