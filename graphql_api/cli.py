"""``graphql-api``: migrate, serve, create-user, create-token, list-tokens, revoke-token,
deactivate-user, seed, export-schema, worker, check-membership, backup, check-file and
new-plugin."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, NoReturn, TypeVar

from graphql_api.settings import Settings
from graphql_api.web.monitoring.logs import configure_logging


def _migrate(settings: Settings) -> None:
    from graphql_api.kernel.db import create_engine
    from graphql_api.migrations.runner import upgrade
    from graphql_api.web.app import load_plugins

    # The preflight refused when any plugin failed to load: its migrations are unknown.
    every_plugin = settings.model_copy(update={"strict_plugins": True})

    async def run() -> None:
        engine = create_engine(settings.direct_url)
        try:
            plugins = load_plugins(every_plugin)
            await upgrade(engine, plugins.migrations(), plugins.rules())
        finally:
            await engine.dispose()

    asyncio.run(run())
    print("Database is at the newest schema.", file=sys.stderr)


def _serve(settings: Settings, host: str | None, port: int | None, workers: int) -> None:
    import contextlib
    import gc

    import uvicorn

    from graphql_api.auth.sockets import stop_within
    from graphql_api.web.app import create_app

    where = f"http://{host or settings.host}:{port or settings.port}/graphql"
    logging.getLogger("graphql_api").info("GraphQL API and GraphiQL on %s", where)
    # Several processes each build the application from the environment, as this one did;
    # their outbox workers share the deliveries (docs/operations.md).
    app: Any = "graphql_api.cli:served_application" if workers > 1 else create_app(settings)
    # Uvicorn logs through ours (log_config=None); each request's line is ours, with more in it.
    # On SIGTERM or SIGINT each process closes its WebSockets with 1001 (auth.sockets), stops
    # accepting, lets running requests finish for half of GRAPHQL_API_SHUTDOWN_SECONDS (then
    # cancels them), shuts the application down (outbox worker, event feed, database), and
    # has ended by GRAPHQL_API_SHUTDOWN_SECONDS whatever still runs.
    options: dict[str, Any] = {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "timeout_graceful_shutdown": max(1, round(settings.shutdown_seconds / 2)),
    }
    if workers > 1:
        # Each worker puts stop_within in front of uvicorn's signal handlers itself.
        uvicorn.run(app, factory=True, workers=workers, **options)
        return
    # The application's objects (schema, plans, mappings) live as long as the process: kept
    # out of the collector's sight, its full collections look at what requests made only,
    # and a burst of them (600 subscribe messages) pauses every client for milliseconds,
    # not the 100 ms a collection of everything took.
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(uvicorn.Config(app, **options))
    # uvicorn installs this as its SIGTERM and SIGINT handler while it serves.
    server.handle_exit = stop_within(settings.shutdown_seconds, server.handle_exit)  # type: ignore[method-assign]
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's exit status for an application that did not start


def served_application() -> Any:
    """The application of one of several ``serve`` processes, from the environment."""
    from graphql_api.web.app import create_app
    from graphql_api.web.monitoring.logs import configure_logging
    from graphql_api.web.preflight import read_settings

    settings = read_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


T = TypeVar("T")


def _in_transaction(
    settings: Settings, work: Callable[[Any], Awaitable[T]], *, writing: bool = True
) -> T:
    """Run ``work(session)`` in one transaction as the system; a refusal is one line on
    stderr and exit status 1. A reading one (``writing=False``) takes no write lock, so it
    does not wait for SQLite's writers."""
    from graphql_api.kernel.db import create_sessionmaker, service_engine
    from graphql_api.kernel.errors import UserInputError
    from graphql_api.kernel.writing import begin_writing
    from graphql_api.web.app import load_plugins

    async def run() -> T:
        engine = service_engine(settings)
        info = {"permissions": load_plugins(settings).permissions}
        try:
            async with create_sessionmaker(engine, info)() as session, session.begin():
                if writing:
                    await begin_writing(session)
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except UserInputError as error:
        sys.exit(f"error: {error}")


def _create_user(settings: Settings, name: str, email: str, role: str) -> None:
    from graphql_api.kernel.access import SYSTEM
    from graphql_api.kernel.errors import ErrorCode, UserInputError
    from graphql_api.users.accounts import create_user
    from graphql_api.users.staff_roles import role_named

    async def work(session: Any) -> str:
        staff_role = await role_named(session, role)
        if staff_role is None:
            raise UserInputError.single(["role"], ErrorCode.NOT_FOUND, f"No staff role {role!r}.")
        values = {"name": name, "email": email, "role_id": staff_role.id}
        _, token = await create_user(session, SYSTEM, values)
        return token

    token = _in_transaction(settings, work)
    print(f"Created user {email} ({role}). API token (shown once, keep it safe):", file=sys.stderr)
    print(token)


def _create_token(settings: Settings, email: str, name: str, expires_in: timedelta | None) -> None:
    from graphql_api.kernel.access import SYSTEM
    from graphql_api.kernel.db import utcnow
    from graphql_api.kernel.errors import ErrorCode, UserInputError
    from graphql_api.users.accounts import user_by_email
    from graphql_api.users.tokens import create_api_token

    async def work(session: Any) -> str:
        user = await user_by_email(session, email)
        if user is None:
            raise UserInputError.single(["email"], ErrorCode.NOT_FOUND, f"No user {email!r}.")
        expires_at = utcnow() + expires_in if expires_in else None
        values = {"name": name, "expires_at": expires_at}
        _, secret = await create_api_token(session, SYSTEM, values, owner_id=user.id)
        return secret

    secret = _in_transaction(settings, work)
    print(f"Created API token {name!r} of {email} (shown once, keep it safe):", file=sys.stderr)
    print(secret)


def _list_tokens(settings: Settings, email: str | None) -> None:
    """Every token (or one user's) as a table: who, what for, and whether it still works;
    never its secret or hash."""
    from graphql_api.kernel.access import SYSTEM
    from graphql_api.kernel.errors import ErrorCode, UserInputError
    from graphql_api.users.accounts import user_by_email
    from graphql_api.users.tokens import every_api_token

    async def work(session: Any) -> list[list[str]]:
        if email is not None and await user_by_email(session, email) is None:
            raise UserInputError.single(["email"], ErrorCode.NOT_FOUND, f"No user {email!r}.")
        return [
            [
                str(token.id),
                user.email + ("" if user.is_active else " (deactivated)"),
                token.name,
                _when(token.created_at, "-"),
                _when(token.last_used_at, "never"),
                _when(token.expires_at, "never"),
                _when(token.revoked_at, "no"),
            ]
            for token, user in await every_api_token(session, SYSTEM, email)
        ]

    rows = _in_transaction(settings, work, writing=False)
    if not rows:
        print("No API tokens.", file=sys.stderr)
        return
    table = [["ID", "USER", "NAME", "CREATED", "LAST USED", "EXPIRES", "REVOKED"], *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for row in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    print("Times are UTC.", file=sys.stderr)


def _when(moment: datetime | None, otherwise: str) -> str:
    """``moment`` to the minute, or ``otherwise`` when there is none."""
    return f"{moment:%Y-%m-%d %H:%M}" if moment is not None else otherwise


def _revoke_token(settings: Settings, token_id: int) -> None:
    from graphql_api.kernel.access import SYSTEM
    from graphql_api.users.models import User
    from graphql_api.users.tokens import revoke_api_token

    async def work(session: Any) -> str:
        # revokeApiToken's own service: the same refusals, and the same audit entry.
        token = await revoke_api_token(session, SYSTEM, token_id)
        owner = await session.get(User, token.user_id)
        return f"Revoked API token {token_id} ({token.name!r} of {owner.email})"

    done = _in_transaction(settings, work)
    print(f"{done}; it will {_stops_working(settings)}.", file=sys.stderr)


def _deactivate_user(settings: Settings, email: str) -> None:
    from graphql_api.kernel.access import SYSTEM
    from graphql_api.kernel.errors import ErrorCode, UserInputError
    from graphql_api.users.accounts import update_user, user_by_email

    async def work(session: Any) -> str:
        user = await user_by_email(session, email)
        if user is None:
            raise UserInputError.single(["email"], ErrorCode.NOT_FOUND, f"No user {email!r}.")
        if not user.is_active:
            raise UserInputError.single(
                ["email"], ErrorCode.INVALID, f"{user.email} is deactivated already."
            )
        # updateUser(isActive: false)'s service: the last active admin stays, and it audits.
        await update_user(session, SYSTEM, user.id, {"is_active": False})
        return user.email

    deactivated = _in_transaction(settings, work)
    print(
        f"Deactivated {deactivated}; their API tokens will {_stops_working(settings)}.",
        file=sys.stderr,
    )


def _stops_working(settings: Settings) -> str:
    # Each serving process trusts a token it has checked for this long (auth/token_cache.py).
    seconds = f"{settings.token_cache_seconds:g}"
    return f"stop working within {seconds} s (GRAPHQL_API_TOKEN_CACHE_SECONDS)"


def _backup(settings: Settings, path: str) -> None:
    from graphql_api.kernel.backup import BackupRefused, backup_sqlite

    try:
        pages = backup_sqlite(settings.database_url, Path(path))
    except BackupRefused as refused:
        sys.exit(f"error: {refused}")
    except OSError as error:
        sys.exit(f"error: cannot write the backup {path}: {error.strerror or error}")
    print(f"Backed up the database to {path} ({pages} pages, integrity checked).", file=sys.stderr)


TAB = "\t"


def _check_file(settings: Settings, path: str, sheet: str | None, separator: str | None) -> None:
    """Read ``path`` as an import would, to its last row: how it was read, its columns and
    first rows on stdout, or the first thing wrong with it as one line and exit 1."""
    from graphql_api.contacts.imports.errors import FileReadError
    from graphql_api.contacts.imports.reading import SAMPLE_ROWS, open_table

    try:
        with open_table(
            Path(path), max_bytes=settings.max_upload_bytes, sheet=sheet, separator=separator
        ) as table:
            samples, rows = [], 0
            for row in table.rows:
                rows += 1
                if len(samples) < SAMPLE_ROWS:
                    samples.append(row)
            shown_separator = "tab" if table.separator == TAB else table.separator
            how = (
                f'sheet "{table.sheet}" of {len(table.sheets)}'
                if table.sheet is not None
                else f"{table.encoding}, separator {shown_separator}"
            )
    except FileReadError as refused:
        sys.exit(f"error: {path}: {refused.message}")
    except OSError as error:
        sys.exit(f"error: cannot read {path}: {error.strerror or error}")
    counted = f"{len(table.columns)} columns, {rows} row{'' if rows == 1 else 's'}"
    print(f"{table.kind.upper()} ({how}): {counted}")
    print("Columns: " + ", ".join(table.columns))
    for warning in table.warnings:
        print(f"Note: {warning}")
    for row in samples:
        shown = "; ".join(f"{column}={value}" for column, value in row.values.items() if value)
        print(f"Row {row.number}: {shown}")


def _import(
    settings: Settings, args: argparse.Namespace, columns: list[tuple[str, str]] | None
) -> None:
    """Upload ``args.path`` and import it (or check it, ``--dry-run``) as a job of this
    process, then print what became of its rows; a refusal before it starts, or a job
    that fails, is exit status 1."""
    from graphql_api.contacts.imports.mapping import suggested
    from graphql_api.contacts.imports.models import RowStatus
    from graphql_api.contacts.imports.service import (
        ImportRequest,
        preview,
        row_counts,
        start_import,
    )
    from graphql_api.contacts.imports.uploads import store_upload
    from graphql_api.jobs.kinds import JOB_KINDS
    from graphql_api.jobs.models import FINISHED, Job, JobState
    from graphql_api.jobs.runner import JobRunner
    from graphql_api.kernel.access import SYSTEM
    from graphql_api.kernel.db import create_sessionmaker, service_engine
    from graphql_api.kernel.errors import UserInputError
    from graphql_api.kernel.writing import begin_writing
    from graphql_api.web.app import job_kinds, load_plugins
    from graphql_api.web.imports import rejected_pages

    async def run(file: BinaryIO) -> int:
        engine = service_engine(settings)
        plugins = load_plugins(settings)
        kinds = job_kinds(plugins)
        info = {"rules": plugins.rules(), "permissions": plugins.permissions, JOB_KINDS: kinds}
        sessions = create_sessionmaker(engine, info)
        try:
            async with sessions() as session, session.begin():
                await begin_writing(session)
                upload = await store_upload(session, SYSTEM, Path(args.path).name, file)
                request = ImportRequest(
                    upload_id=upload.id,
                    columns=columns,
                    mapping_name=args.mapping,
                    match=args.match,
                    duplicates=args.duplicates,
                    group_id=args.group,
                    new_group_name=args.new_group,
                    dry_run=args.dry_run,
                    separator=args.separator,
                    sheet=args.sheet,
                )
                if columns is None and args.mapping is None:
                    seen = await preview(
                        session, SYSTEM, upload.id, separator=args.separator, sheet=args.sheet
                    )
                    request = replace(
                        request,
                        columns=[(c, f.value) for c, f in suggested(seen.detection.columns)],
                    )
                    shown = ", ".join(f"{c}={f}" for c, f in request.columns or [])
                    print(f"Columns (guessed from the header): {shown}", file=sys.stderr)
                job, _ = await start_import(session, SYSTEM, request, timezone=settings.timezone)
            runner = JobRunner(sessions, kinds, settings)
            while True:
                ran = await runner.run_once()
                async with sessions() as session:
                    state = await session.get(Job, job.id)
                    assert state is not None
                    if state.state in FINISHED:
                        counts = await row_counts(session, job.id)
                        break
                if ran is None:
                    await asyncio.sleep(0.5)
            if state.state is not JobState.SUCCEEDED:
                reasons = "; ".join(e["message"] for e in state.errors)
                print(f"error: the job {state.state.value.lower()}: {reasons}", file=sys.stderr)
                return 1
            what = "Checked" if args.dry_run else "Imported"
            print(
                f"{what} {args.path} (job {job.id}): "
                + ", ".join(f"{counts[s]} {s.value.lower()}" for s in RowStatus if counts[s])
            )
            async for page in rejected_pages(sessions, job.id):
                for row in page:
                    print(row[-1], file=sys.stderr)
            return 2 if counts[RowStatus.REJECTED] else 0
        finally:
            await engine.dispose()

    try:
        with open(args.path, "rb") as file:
            code = asyncio.run(run(file))
    except UserInputError as error:
        sys.exit(f"error: {error}")
    except OSError as error:
        sys.exit(f"error: cannot read {args.path}: {error.strerror or error}")
    sys.exit(code)


def _column(text: str) -> tuple[str, str]:
    """``Column=field`` of ``--column``."""
    column, equals, field = text.rpartition("=")
    if not equals or not column.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write COLUMN=field, e.g. E-mail=email")
    return column.strip(), field.strip()


def _duration(text: str) -> timedelta:
    """``90d``, ``12h`` or ``30m`` as a time span, at most a token's longest lifetime."""
    from graphql_api.users.tokens import LONGEST_LIFETIME

    written = re.fullmatch(r"([0-9]+)([dhm])", text)
    if written is None or int(written[1]) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is no duration; write e.g. 90d, 12h or 30m")
    seconds = int(written[1]) * {"d": 86400, "h": 3600, "m": 60}[written[2]]
    if seconds > LONGEST_LIFETIME.total_seconds():
        raise argparse.ArgumentTypeError(
            f"{text!r} is too long: a token lives at most {LONGEST_LIFETIME.days}d; leave "
            "--expires-in out for one that never expires"
        )
    return timedelta(seconds=seconds)


def _number(lowest: int, highest: int, what: str) -> Callable[[str], int]:
    """An argument type: a whole number from ``lowest`` to ``highest``."""

    def number(text: str) -> int:
        if re.fullmatch(r"[0-9]+", text) is None or not lowest <= int(text) <= highest:
            raise argparse.ArgumentTypeError(
                f"{text!r} is no {what}; write a number from {lowest} to {highest}"
            )
        return int(text)

    return number


def _check_membership(settings: Settings, repair: bool) -> None:
    """Compare the stored memberships and counts with a computation from scratch; print
    each difference; with ``repair``, fix them (history and events record each fix)."""
    from graphql_api.groups.derived import differences, rebuild
    from graphql_api.kernel.db import create_sessionmaker, service_engine
    from graphql_api.kernel.writing import begin_writing
    from graphql_api.web.app import load_plugins

    async def run() -> list[str]:
        engine = service_engine(settings)
        plugins = load_plugins(settings)
        info = {"rules": plugins.rules(), "permissions": plugins.permissions}
        try:
            async with create_sessionmaker(engine, info)() as session, session.begin():
                # A snapshot to compare, and on SQLite no writer beside the repair.
                await begin_writing(session)
                found = await differences(session)
                if found and repair:
                    await rebuild(session, cause="repaired by check-membership", record=True)
                return found
        finally:
            await engine.dispose()

    found = asyncio.run(run())
    for line in found:
        print(line)
    if not found:
        print("Every stored membership and count is exact.", file=sys.stderr)
        return
    print(f"{len(found)} difference(s){'; repaired' if repair else ''}.", file=sys.stderr)
    if not repair:
        sys.exit(1)


def _seed(settings: Settings, demo: bool, size: str | None) -> None:
    from graphql_api.seeding.datasets import seed_size
    from graphql_api.seeding.demo import seed_demo

    what = "the demo data" if demo else f"dataset {size}"
    if demo:
        logins = asyncio.run(seed_demo(settings))
        loaded, tokens = logins is not None, logins or []
    else:
        loaded, tokens = asyncio.run(seed_size(settings.direct_url, size or "")), []
    if not loaded:
        print(f"The database already holds data; {what} not loaded.", file=sys.stderr)
        return
    print(f"Loaded {what}.", file=sys.stderr)
    for kind, name, credentials in tokens:
        print(f"  {kind:8} {name}: {credentials}", file=sys.stderr)


def _worker(settings: Settings) -> None:
    from graphql_api.jobs.kinds import JOB_KINDS
    from graphql_api.jobs.runner import JobRunner
    from graphql_api.kernel.db import create_sessionmaker, service_engine
    from graphql_api.notifications.worker import Worker
    from graphql_api.web.app import job_kinds, load_plugins

    async def run() -> None:
        engine = service_engine(settings, serving=True)
        plugins = load_plugins(settings)
        kinds = job_kinds(plugins)
        sessions = create_sessionmaker(engine, {"rules": plugins.rules(), JOB_KINDS: kinds})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_name in ("SIGINT", "SIGTERM"):
            loop.add_signal_handler(getattr(signal, signal_name), stop.set)
        print(f"Delivering for {', '.join(plugins.subscribers) or 'no plugin'}.", file=sys.stderr)
        print(f"Running jobs of kinds {', '.join(kinds) or '(none)'}.", file=sys.stderr)
        try:
            # Bulk jobs beside the deliveries; both stop between two steps of their work.
            await asyncio.gather(
                Worker(sessions, plugins, settings).run_forever(stop),
                JobRunner(sessions, kinds, settings, schedules=plugins.scheduled_jobs).run_forever(
                    stop
                ),
            )
        finally:
            await engine.dispose()

    asyncio.run(run())


def _export_schema(settings: Settings, portal: bool) -> None:
    from graphql_api.portal.api.schema import build_portal_schema
    from graphql_api.web.app import load_plugins
    from graphql_api.web.staff_schema import build_schema

    if portal:
        print(build_portal_schema(settings).as_str())
    else:
        print(build_schema(settings, load_plugins(settings).schema).as_str())


def _new_plugin(name: str, directory: str) -> None:
    from pathlib import Path

    from graphql_api.scaffold import ScaffoldError, write_plugin

    try:
        made = write_plugin(name, Path(directory))
    except ScaffoldError as error:
        sys.exit(f"error: {error}")
    except OSError as error:
        sys.exit(f"error: cannot write the plugin into {directory}: {error.strerror or error}")
    print(f"Made {made}: `pip install -e {made}`, then `pytest` there.", file=sys.stderr)
    print(made)


class _Parser(argparse.ArgumentParser):
    """Refuses a command line as every other failure: one line on stderr, exit status 1."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _file_arguments(parser: argparse.ArgumentParser) -> None:
    """The file of ``check-file`` and ``import``, and how to read it."""
    parser.add_argument("path", help="the CSV or XLSX file")
    parser.add_argument("--sheet", help="the XLSX sheet to read (default: the first)")
    parser.add_argument(
        "--separator",
        type=lambda text: TAB if text == "\\t" else text,
        choices=[",", ";", TAB, "|"],
        metavar="SEP",
        help="the CSV separator: , ; \\t (a tab) or | (default: detected)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="graphql-api",
        description="GraphQL API for CRM contact groups. Settings come from GRAPHQL_API_* "
        "environment variables.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {importlib.metadata.version('graphql-api')}",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database to the newest schema")
    serve = commands.add_parser("serve", help="serve the API (tokens required)")
    serve.add_argument("--host", help="interface to listen on (default: GRAPHQL_API_HOST)")
    serve.add_argument(
        "--port",
        type=_number(1, 65535, "port"),
        help="port to listen on (default: GRAPHQL_API_PORT)",
    )
    serve.add_argument(
        "--workers",
        type=_number(1, 64, "number of processes"),
        default=1,
        metavar="N",
        help="processes to serve with (default 1); one per core uses them all",
    )
    create_user = commands.add_parser(
        "create-user", help="add a staff user; prints its API token as the last line"
    )
    create_user.add_argument("--name", required=True)
    create_user.add_argument("--email", required=True)
    role = create_user.add_mutually_exclusive_group()
    role.add_argument(
        "--role",
        default="manager",
        help="staff role: admin, manager, viewer or one of yours (default: manager)",
    )
    role.add_argument("--admin", action="store_true", help="the same as --role admin")
    create_token = commands.add_parser(
        "create-token", help="give a user another API token; prints it as the last line"
    )
    create_token.add_argument("--email", required=True, help="the user's e-mail address")
    create_token.add_argument("--name", required=True, help="what the token is for")
    create_token.add_argument(
        "--expires-in",
        type=_duration,
        help="e.g. 90d, 12h or 30m, at most three years (default: never)",
    )
    list_tokens = commands.add_parser(
        "list-tokens", help="list every API token: user, name, created, last used, expiry"
    )
    list_tokens.add_argument("--email", help="only this user's tokens")
    revoke_token = commands.add_parser(
        "revoke-token", help="revoke an API token by its id (see list-tokens)"
    )
    revoke_token.add_argument("id", type=_number(1, 2**31 - 1, "token id"), help="its id")
    deactivate_user = commands.add_parser(
        "deactivate-user", help="deactivate a staff user; their API tokens stop working"
    )
    deactivate_user.add_argument("email", help="the user's e-mail address")
    seed = commands.add_parser("seed", help="load data into an empty database")
    which = seed.add_mutually_exclusive_group(required=True)
    which.add_argument("--demo", action="store_true", help="users, contacts and groups to try")
    which.add_argument(
        "--size",
        choices=["S", "M", "L"],
        help="a benchmark dataset: 10,000, 100,000 or 1,000,000 contacts (bench/README.md)",
    )
    export = commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.add_argument(
        "--portal", action="store_true", help="the portal's schema (/portal/graphql) instead"
    )
    commands.add_parser(
        "worker", help="deliver notifications (outbox) and run bulk jobs until stopped"
    )
    check = commands.add_parser(
        "check-membership",
        help="compare stored memberships with a computation from scratch (exit 1 on a difference)",
    )
    check.add_argument("--repair", action="store_true", help="fix each difference, with events")
    backup = commands.add_parser(
        "backup", help="copy the SQLite database while it serves (docs/backup.md)"
    )
    backup.add_argument("path", help="where the copy goes; must not exist")
    check_file = commands.add_parser(
        "check-file",
        help="read a CSV or XLSX as an import would: its columns and first rows, or what is "
        "wrong with it (docs/import.md); imports nothing",
    )
    _file_arguments(check_file)
    importing = commands.add_parser(
        "import",
        help="import contacts (and memberships) from a CSV or XLSX file as the system, as a "
        "job this command runs; prints what became of the rows (docs/import.md)",
    )
    _file_arguments(importing)
    importing.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="COLUMN=field",
        help="a column and the field it fills (first_name, last_name, organisation_name, "
        "email, phone, street, postal_code, city, kind, external_id, groups, "
        "member_since); repeat it. Default: guessed from the header",
    )
    importing.add_argument("--mapping", help="a saved mapping, instead of --column")
    importing.add_argument(
        "--match", choices=["email", "external_id"], default="email", help="find contacts by"
    )
    importing.add_argument(
        "--duplicates",
        choices=["skip", "update", "fill_empty"],
        default="skip",
        help="what to do with a contact a row finds (default: skip)",
    )
    into = importing.add_mutually_exclusive_group()
    into.add_argument("--group", type=int, help="add every contact to this static group (id)")
    into.add_argument("--new-group", help="add every contact to a new static group of this name")
    importing.add_argument("--dry-run", action="store_true", help="check every row; write nothing")
    new_plugin = commands.add_parser(
        "new-plugin", help="write a ready plugin distribution (prints its folder last)"
    )
    new_plugin.add_argument("name", help="the plugin's name, e.g. buurtpanel")
    new_plugin.add_argument(
        "--directory", default=".", help="where its folder goes (default: here)"
    )
    return parser


USES_THE_DATABASE = {
    "import",
    "migrate",
    "serve",
    "create-user",
    "create-token",
    "list-tokens",
    "revoke-token",
    "deactivate-user",
    "seed",
    "worker",
    "check-membership",
}
"""Commands that check the database first; all but ``migrate`` need its newest schema."""


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from graphql_api.web.preflight import (
        Refused,
        check_database,
        check_listening,
        check_plugins,
        check_trusted_documents,
        read_settings,
    )

    try:
        settings = read_settings()
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "serve":
            check_trusted_documents(settings)
        if args.command in USES_THE_DATABASE or args.command == "export-schema":
            # migrate cannot leave a plugin out: it would never apply its migrations.
            plugins = check_plugins(settings, every=args.command == "migrate")
            if args.command in USES_THE_DATABASE:
                check_database(settings, plugins, migrated=args.command != "migrate")
        if args.command == "serve":
            check_listening(args.host or settings.host, args.port or settings.port)
    except Refused as refused:
        print(f"error: {refused}", file=sys.stderr)
        if refused.hint:
            print(f"hint: {refused.hint}", file=sys.stderr)
        sys.exit(1)
    match args.command:
        case "migrate":
            _migrate(settings)
        case "serve":
            _serve(settings, args.host, args.port, args.workers)
        case "create-user":
            _create_user(settings, args.name, args.email, "admin" if args.admin else args.role)
        case "create-token":
            _create_token(settings, args.email, args.name, args.expires_in)
        case "list-tokens":
            _list_tokens(settings, args.email)
        case "revoke-token":
            _revoke_token(settings, args.id)
        case "deactivate-user":
            _deactivate_user(settings, args.email)
        case "seed":
            _seed(settings, args.demo, args.size)
        case "export-schema":
            _export_schema(settings, args.portal)
        case "worker":
            _worker(settings)
        case "check-membership":
            _check_membership(settings, args.repair)
        case "backup":
            _backup(settings, args.path)
        case "check-file":
            _check_file(settings, args.path, args.sheet, args.separator)
        case "import":
            try:
                columns = [_column(text) for text in args.column] or None
            except argparse.ArgumentTypeError as error:
                sys.exit(f"error: --column {error}")
            _import(settings, args, columns)
        case "new-plugin":
            _new_plugin(args.name, args.directory)


if __name__ == "__main__":
    main()
