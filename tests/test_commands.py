"""Every ``graphql-api`` command as an operator runs it: in a process of its own, on a fresh
database, SQLite and (when ``GRAPHQL_API_TEST_DATABASE_URL`` is set) PostgreSQL, for what
it does and for each way it is documented to fail: one line on stderr (``error: ...``; a
second, ``hint: ...``, where one helps), no traceback, exit status 1.

Commands that do not depend on each other run at once (``run_all``): a command's process
takes about a second to start, and the file should stay quick."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pty
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from graphql_api.cli import main
from graphql_api.testing import (
    BACKENDS,
    POSTGRES_URL,
    cli,
    create_postgresql_database,
    drop_postgresql_database,
    serving,
)

Done = subprocess.CompletedProcess[str]


# Databases -----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


class Databases:
    """New, empty databases of one backend (not even created yet, for SQLite: as a fresh
    checkout has none); each PostgreSQL one is dropped when the module is done."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend = backend
        self.folder = folder
        self.made: list[str] = []

    async def new(self) -> dict[str, str]:
        """The environment of commands on a new database."""
        name = f"graphql_api_cli_{uuid.uuid4().hex[:12]}"
        if self.backend == "sqlite":
            return environment(f"sqlite+aiosqlite:///{self.folder / name}.sqlite3")
        url = await create_postgresql_database(name)
        self.made.append(name)
        return environment(url)

    async def drop(self) -> None:
        for name in self.made:
            await drop_postgresql_database(name)


def environment(database_url: str) -> dict[str, str]:
    """The environment a command runs in: this one's, on ``database_url``."""
    return {**os.environ, "GRAPHQL_API_DATABASE_URL": database_url, "GRAPHQL_API_DEV_MODE": "false"}


@pytest.fixture(scope="module")
async def databases(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Databases]:
    made = Databases(backend, tmp_path_factory.mktemp(f"commands-{backend}"))
    yield made
    await made.drop()


@pytest.fixture
async def fresh(databases: Databases) -> dict[str, str]:
    """The environment of commands on a new database, neither migrated nor made yet."""
    return await databases.new()


@pytest.fixture(scope="module")
async def migrated(databases: Databases) -> dict[str, str]:
    """The environment of commands on a database that `graphql-api migrate` brought to the
    newest schema, shared by the module's tests (each uses its own users)."""
    env = await databases.new()
    done = cli(env, "migrate")
    assert done.returncode == 0, done.stderr
    return env


# Running commands -----------------------------------------------------------------------


def run_all(*runs: tuple[Mapping[str, str], Sequence[str]]) -> list[Done]:
    """``graphql-api ARGS`` in each ``(env, ARGS)`` at once; what each did, in order."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda run: cli(run[0], *run[1]), runs))


def assert_refused(done: Done, *said: str, hint: str | None = None) -> None:
    """The command stopped with exit status 1 and one line on stderr saying each of
    ``said`` (and, given ``hint``, a second line ``hint: ...`` saying it); no traceback."""
    shown = f"{done.args[3:]}:\n{done.stderr}"
    assert done.returncode == 1, shown
    assert done.stderr.startswith("error: "), shown
    assert "Traceback" not in done.stderr, shown
    first, *rest = done.stderr.splitlines()
    assert all(part in first for part in said), shown
    if hint is None:
        assert rest == [] and done.stderr.endswith("\n"), shown
    else:
        assert len(rest) == 1 and rest[0].startswith("hint: ") and hint in rest[0], shown


def assert_done(done: Done, *said: str) -> None:
    """The command succeeded, saying each of ``said`` on stderr."""
    shown = f"{done.args[3:]}:\n{done.stderr}"
    assert done.returncode == 0, shown
    assert "Traceback" not in done.stderr, shown
    assert all(part in done.stderr for part in said), shown


def last_line(done: Done) -> str:
    return done.stdout.strip().splitlines()[-1]


def a_plugin(folder: Path, name: str, source: str) -> dict[str, str]:
    """A plugin ``name`` installed for one command only: a distribution in ``folder``
    (module ``graphql_api_<name>`` with ``source``, entry point ``name``), found through
    ``PYTHONPATH``; the variables that install it."""
    (folder / f"graphql_api_{name}.py").write_text(source)
    metadata = folder / f"graphql_api_{name}-0.1.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text(f"Metadata-Version: 2.1\nName: graphql-api-{name}\n")
    (metadata / "entry_points.txt").write_text(f"[graphql_api]\n{name} = graphql_api_{name}\n")
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}


# migrate ---------------------------------------------------------------------------------


DATABASE_COMMANDS = [
    ["create-user", "--name", "A", "--email", "a@example.coop"],
    ["create-token", "--email", "a@example.coop", "--name", "t"],
    ["seed", "--demo"],
    ["serve"],
    ["worker"],
    ["check-membership"],
]
"""Every command that uses the database but ``migrate``."""


def test_migrate_brings_a_fresh_database_to_the_newest_schema(fresh: dict[str, str]):
    # The first command makes the SQLite file; then the others may look at once.
    assert_refused(
        cli(fresh, "create-user", "--name", "A", "--email", "a@example.coop"),
        "is not at the newest schema (alembic_version",
        "behind); run `graphql-api migrate` first",
    )
    others = [["check-membership"], ["serve"], ["worker"], ["seed", "--demo"]]
    for refused in run_all(*[(fresh, command) for command in others]):
        assert_refused(refused, "is not at the newest schema", "run `graphql-api migrate` first")

    assert_done(cli(fresh, "migrate"), "Database is at the newest schema.")
    again, checked = run_all((fresh, ["migrate"]), (fresh, ["check-membership"]))
    assert_done(again, "Database is at the newest schema.")
    assert "Running upgrade" not in again.stderr, "nothing left to do"
    assert_done(checked, "Every stored membership and count is exact.")


BROKEN_PLUGIN = "from graphql_api.plugins import hookimpl  # where it was before 1.0\n"


def test_migrate_refuses_when_a_plugin_fails_to_load(fresh: dict[str, str], tmp_path: Path):
    broken = a_plugin(tmp_path, "broken", BROKEN_PLUGIN)
    import_failed, not_installed = run_all(
        ({**fresh, **broken}, ["migrate"]),
        ({**fresh, "GRAPHQL_API_PLUGINS": "coach,nope"}, ["migrate"]),
    )
    assert_refused(
        import_failed,
        "plugin 'broken' failed: No module named 'graphql_api.plugins'",
        "nothing was migrated",
        hint="a plugin imports only `graphql_api.plugin`",
    )
    assert_refused(
        not_installed,
        "plugin 'nope' failed: not installed (named in GRAPHQL_API_PLUGINS)",
        "nothing was migrated",
    )
    assert_refused(
        cli(fresh, "check-membership"),
        "is not at the newest schema (alembic_version, ",
    )


# create-user, create-token ---------------------------------------------------------------


def test_create_user_and_create_token(migrated: dict[str, str]):
    manager, viewer, admin = run_all(
        (migrated, ["create-user", "--name", "Marieke", "--email", "marieke@example.coop"]),
        (
            migrated,
            ["create-user", "--name", "Piet", "--email", "piet@example.coop", "--role", "viewer"],
        ),
        (migrated, ["create-user", "--name", "Jo", "--email", "jo@example.coop", "--admin"]),
    )
    assert_done(manager, "Created user marieke@example.coop (manager)")
    assert_done(viewer, "(viewer)")
    assert_done(admin, "(admin)")
    assert all(last_line(made).startswith("gapi_") for made in (manager, viewer, admin))

    token = ["create-token", "--email", "PIET@example.coop", "--name", "sync"]
    done, *refusals = run_all(
        (migrated, [*token, "--expires-in", "90d"]),
        (migrated, ["create-user", "--name", "P", "--email", "Piet@Example.coop"]),
        (migrated, ["create-user", "--name", "X", "--email", "x@example.coop", "--role", "chef"]),
        (migrated, ["create-token", "--email", "nobody@example.coop", "--name", "t"]),
        (migrated, ["create-token", "--email", "piet@example.coop", "--name", ""]),
        (migrated, [*token, "--expires-in", "99999999d"]),
    )
    assert_done(done, "Created API token 'sync' of PIET@example.coop")
    assert last_line(done).startswith("gapi_")
    duplicate, no_role, no_user, no_name, far = refusals
    assert_refused(duplicate, "already exists")
    assert_refused(no_role, "No staff role 'chef'")
    assert_refused(no_user, "No user 'nobody@example.coop'")
    assert_refused(no_name, "name is required")
    assert_refused(far, "argument --expires-in: '99999999d' is too long: a token lives at most")


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (
            "create-user",
            "--role ROLE staff role: admin, manager, viewer or one of yours (default: manager)",
        ),
        (
            "create-token",
            "--expires-in EXPIRES_IN e.g. 90d, 12h or 30m, at most three years (default: never)",
        ),
        ("serve", "--port PORT port to listen on (default: GRAPHQL_API_PORT)"),
        ("serve", "--workers N processes to serve with (default 1)"),
    ],
)
def test_help_says_what_each_option_defaults_to(
    command: str, said: str, capsys: pytest.CaptureFixture[str]
):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert said in " ".join(capsys.readouterr().out.split())


# seed, check-membership -----------------------------------------------------------------


async def test_seed_demo_once_then_check_membership_and_repair(fresh: dict[str, str]):
    assert_done(cli(fresh, "migrate"))
    seeded = cli(fresh, "seed", "--demo")
    assert_done(seeded, "Loaded the demo data.")
    logins = [line.split() for line in seeded.stderr.splitlines() if "Bearer gapi_" in line]
    assert [(words[0], words[1]) for words in logins] == [
        ("admin", "Johannes"),
        ("manager", "Anna"),
        ("viewer", "Pieter"),
    ]

    again, clean = run_all((fresh, ["seed", "--demo"]), (fresh, ["check-membership"]))
    # Not a failure: `make run` seeds each time it starts.
    assert_done(again, "The database already holds data; the demo data not loaded.")
    assert "Bearer" not in again.stderr
    assert_done(clean, "Every stored membership and count is exact.")
    assert clean.stdout == ""

    engine = create_async_engine(fresh["GRAPHQL_API_DATABASE_URL"])
    async with engine.begin() as connection:
        group, contact = (
            await connection.execute(
                text("SELECT group_id, contact_id FROM derived_memberships ORDER BY group_id")
            )
        ).first()
        await connection.execute(
            text("DELETE FROM derived_memberships WHERE group_id = :g AND contact_id = :c"),
            {"g": group, "c": contact},
        )
    await engine.dispose()
    found = cli(fresh, "check-membership")
    assert found.returncode == 1, found.stderr
    assert f"group {group}: contact {contact} is missing" in found.stdout
    assert f"group {group}: member count" in found.stdout
    assert found.stderr.strip().endswith("difference(s).") and "Traceback" not in found.stderr
    assert_done(cli(fresh, "check-membership", "--repair"), "difference(s); repaired.")
    engine = create_async_engine(fresh["GRAPHQL_API_DATABASE_URL"])
    async with engine.connect() as connection:
        back = await connection.scalar(
            text(
                "SELECT count(*) FROM derived_memberships WHERE group_id = :g AND contact_id = :c"
            ),
            {"g": group, "c": contact},
        )
    await engine.dispose()
    assert back == 1


async def test_seed_size_s_loads_the_smallest_benchmark_dataset(fresh: dict[str, str]):
    assert_done(cli(fresh, "migrate"))
    seeded = cli(fresh, "seed", "--size", "S")
    assert_done(seeded, "Loaded dataset S.")
    assert seeded.stderr.strip().endswith("Loaded dataset S."), "progress bars on a terminal only"
    engine = create_async_engine(fresh["GRAPHQL_API_DATABASE_URL"])
    async with engine.connect() as connection:
        contacts = await connection.scalar(text("SELECT count(*) FROM contacts"))
    await engine.dispose()
    assert contacts == 10_000
    checked, demo = run_all((fresh, ["check-membership"]), (fresh, ["seed", "--demo"]))
    assert_done(checked, "Every stored membership and count is exact.")
    assert_done(demo, "already holds data; the demo data not loaded.")


PROGRESS = """
from graphql_api.seeding.datasets import progress
with progress("contacts", 3) as advance:
    advance(3)
"""


def test_seed_shows_progress_bars_on_a_terminal_only():
    piped = subprocess.run(
        [sys.executable, "-c", PROGRESS], capture_output=True, text=True, timeout=60, check=True
    )
    assert piped.stderr == ""
    controller, terminal = pty.openpty()
    with os.fdopen(controller, "rb", buffering=0) as screen:
        subprocess.run([sys.executable, "-c", PROGRESS], stderr=terminal, timeout=60, check=True)
        os.close(terminal)
        shown = screen.read(4096).decode()
    assert "contacts" in shown and "3/3" in shown


# The database does not answer ------------------------------------------------------------


UNREACHABLE = "postgresql+asyncpg://nobody:secret@127.0.0.1:1/nothing"
"""No server listens there; the password is one no message may show."""


def test_every_database_command_says_in_one_line_that_the_database_does_not_answer(
    tmp_path: Path,
):
    # A SQLite file whose folder cannot be made (its "folder" is a file), and no server.
    (tmp_path / "a-file").touch()
    under_a_file = environment(f"sqlite+aiosqlite:///{tmp_path / 'a-file' / 'db.sqlite3'}")
    no_server = environment(UNREACHABLE)
    runs = [(no_server, ["migrate"]), (under_a_file, ["migrate"])]
    runs += [
        (no_server if index % 2 else under_a_file, command)
        for index, command in enumerate(DATABASE_COMMANDS)
    ]
    if POSTGRES_URL:  # a database the server does not have
        missing = make_url(POSTGRES_URL).set(database=f"graphql_api_cli_{uuid.uuid4().hex}")
        runs.append((environment(missing.render_as_string(hide_password=False)), ["worker"]))
    for (env, _), refused in zip(runs, run_all(*runs), strict=True):
        shown = make_url(env["GRAPHQL_API_DATABASE_URL"]).render_as_string(hide_password=True)
        assert_refused(
            refused,
            f"error: cannot reach the database {shown}: ",
            "; check that it runs and that GRAPHQL_API_DATABASE_URL names it",
        )
        assert "secret" not in refused.stderr, "no password in the log"


SETTINGS_THAT_DO_NOT_FIT = [
    ("migrate", "GRAPHQL_API_DATABASE_URL", "nonsense", "DATABASE_URL: not a database URL"),
    ("worker", "GRAPHQL_API_DATABASE_URL", "postgresql://u@h/d", "e.g. sqlite+aiosqlite:///"),
    ("serve", "GRAPHQL_API_PORT", "eighty", "GRAPHQL_API_PORT: Input should be a valid integer"),
    (
        "serve",
        "GRAPHQL_API_TRUSTED_DOCUMENTS_ONLY",
        "true",
        "GRAPHQL_API_TRUSTED_DOCUMENTS_ONLY: true needs GRAPHQL_API_TRUSTED_DOCUMENTS",
    ),
    (
        "migrate",
        "GRAPHQL_API_DATABASE_DIRECT_URL",
        "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        "GRAPHQL_API_DATABASE_DIRECT_URL: only for PostgreSQL behind a pooler: both it and "
        "GRAPHQL_API_DATABASE_URL must be postgresql+asyncpg://... URLs",
    ),
]


def test_a_setting_that_does_not_fit_is_one_line_with_a_hint(tmp_path: Path):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    runs = [
        ({**env, setting: value}, [command])
        for command, setting, value, _ in SETTINGS_THAT_DO_NOT_FIT
    ]
    for refused, (*_, said) in zip(run_all(*runs), SETTINGS_THAT_DO_NOT_FIT, strict=True):
        assert_refused(refused, said, "(see the settings in README.md)")


# serve, worker ---------------------------------------------------------------------------


def test_serve_answers_until_stopped(migrated: dict[str, str]):
    with serving(migrated) as (url, process):
        assert httpx.get(f"{url}/health/ready", timeout=10).status_code == 200
    # uvicorn shuts down cleanly, then ends by the signal it was sent, as is the custom.
    assert process.returncode in (0, -signal.SIGTERM)
    assert process.stderr is not None
    log = process.stderr.read()
    assert "GraphQL API and GraphiQL on http://127.0.0.1:" in log and "Traceback" not in log
    assert "Application shutdown complete." in log


def test_serve_refuses_where_it_cannot_listen(migrated: dict[str, str]):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use, out_of_range, no_host = run_all(
            (migrated, ["serve", "--port", str(port)]),
            ({**migrated, "GRAPHQL_API_PORT": "70000"}, ["serve"]),
            # TEST-NET-1 (RFC 5737): an address no machine has.
            (migrated, ["serve", "--host", "192.0.2.1", "--port", str(port)]),
        )
    assert_refused(
        in_use,
        f"cannot listen on 127.0.0.1:{port}: Address already in use",
        "choose another --port or GRAPHQL_API_PORT",
    )
    assert_refused(out_of_range, "70000 is no port; give --port or GRAPHQL_API_PORT a number")
    assert_refused(
        no_host,
        f"cannot listen on 192.0.2.1:{port}: Cannot assign requested address",
        "give --host or GRAPHQL_API_HOST an address of this machine",
    )


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


ROLES = "{ roles { key } }"
MANIFESTS = [  # every way a manifest fails: tests/test_trusted_documents.py
    (None, "cannot read "),
    (
        f'{{"sha256:{sha256(ROLES)}": "{{ roles {{ label }} }}"}}',
        f"document 'sha256:{sha256(ROLES)}' of {{path}} does not match its id",
    ),
]


def test_serve_refuses_a_manifest_of_trusted_documents_it_cannot_use(tmp_path: Path):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    paths = []
    for index, (manifest, _) in enumerate(MANIFESTS):
        path = tmp_path / f"persisted-documents-{index}.json"
        if manifest is not None:
            path.write_text(manifest)
        paths.append(path)
    runs = [({**env, "GRAPHQL_API_TRUSTED_DOCUMENTS": str(path)}, ["serve"]) for path in paths]
    for refused, path, (_, said) in zip(run_all(*runs), paths, MANIFESTS, strict=True):
        assert_refused(
            refused,
            "error: GRAPHQL_API_TRUSTED_DOCUMENTS: ",
            said.format(path=path),
            "use the manifest your frontend's build writes",
        )


def test_worker_delivers_until_stopped(migrated: dict[str, str]):
    worker = subprocess.Popen(
        [sys.executable, "-m", "graphql_api.cli", "worker"],
        env=migrated,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert worker.stderr is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in worker.stderr or []])
    reader.start()
    try:
        seen = []
        while not any(line.startswith("Delivering for ") for line in seen):
            seen.append(lines.get(timeout=60))
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        worker.kill()
        reader.join(timeout=10)
    assert not any("Traceback" in line for line in [*seen, *lines.queue])


# export-schema, plugins that do not load -------------------------------------------------


DUPLICATE_ROLE = """
from graphql_api.plugin import RoleDefinition, hookimpl


@hookimpl
def register_roles():
    return [RoleDefinition("coach", {"nl": "Is ook coach", "en": "Is coach too"})]
"""


def test_export_schema_prints_the_stored_schemas(
    repo_root: Path, built_in_plugins: list[str], tmp_path: Path
):
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'not-used.sqlite3'}")
    staff, portal = run_all(
        ({**env, "GRAPHQL_API_PLUGINS": ",".join(built_in_plugins)}, ["export-schema"]),
        (env, ["export-schema", "--portal"]),
    )
    assert staff.returncode == 0 and portal.returncode == 0, staff.stderr + portal.stderr
    assert portal.stdout == (repo_root / "portal-schema.graphql").read_text()
    assert staff.stdout == (repo_root / "schema.graphql").read_text()


def test_plugins_that_cannot_load_together_are_one_line(tmp_path: Path):
    # Refused before the database is looked at.
    env = environment(f"sqlite+aiosqlite:///{tmp_path / 'not-used.sqlite3'}")
    duplicate = {**env, **a_plugin(tmp_path, "dup", DUPLICATE_ROLE)}
    strict = {**env, "GRAPHQL_API_STRICT_PLUGINS": "true", "GRAPHQL_API_PLUGINS": "nope"}
    conflict, export_strict, check_strict = run_all(
        (duplicate, ["migrate"]), (strict, ["export-schema"]), (strict, ["check-membership"])
    )
    assert_refused(
        conflict,
        "the plugins do not load together: role 'coach' is contributed by both 'dup' and 'coach'",
        "name the plugins to load in GRAPHQL_API_PLUGINS",
    )
    for refused in (export_strict, check_strict):
        assert_refused(
            refused,
            "plugin 'nope' failed: not installed",
            "leave it out of GRAPHQL_API_PLUGINS or unset GRAPHQL_API_STRICT_PLUGINS",
        )


# new-plugin ------------------------------------------------------------------------------


def test_new_plugin_writes_a_distribution_once(tmp_path: Path):
    made = cli(os.environ, "new-plugin", "zon", "--directory", str(tmp_path))
    assert_done(made, "`pip install -e ")
    assert last_line(made) == str(tmp_path / "graphql-api-zon")
    assert (tmp_path / "graphql-api-zon" / "pyproject.toml").is_file()
    (tmp_path / "a-file").touch()
    again, into_a_file = run_all(
        (os.environ, ["new-plugin", "zon", "--directory", str(tmp_path)]),
        (os.environ, ["new-plugin", "wind", "--directory", str(tmp_path / "a-file")]),
    )
    assert_refused(again, f"{tmp_path / 'graphql-api-zon'} exists already")
    assert_refused(into_a_file, f"cannot write the plugin into {tmp_path / 'a-file'}: Not a dir")


@pytest.mark.parametrize("name", ["Zon", "zon-wind", ""])
def test_new_plugin_refuses_a_name_in_one_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    with pytest.raises(SystemExit) as exited:
        main(["new-plugin", name, "--directory", str(tmp_path)])
    assert (
        exited.value.code == f"error: {name!r} is not a plugin name: lower-case letters, "
        "digits and single underscores, starting with a letter, at most 20 characters"
    )
    assert list(tmp_path.iterdir()) == []


# The command line itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ("", "graphql-api: the following arguments are required: command"),
        ("bogus", "graphql-api: argument command: invalid choice: 'bogus'"),
        ("create-user --email a@example.coop", "the following arguments are required: --name"),
        ("seed", "graphql-api seed: one of the arguments --demo --size is required"),
        ("seed --size XL", "argument --size: invalid choice: 'XL'"),
        ("seed --demo --size S", "argument --size: not allowed with argument --demo"),
        ("serve --port 70000", "argument --port: '70000' is no port; write a number from 1 to"),
        ("serve --port 0", "argument --port: '0' is no port"),
        ("serve --port 80.5", "argument --port: '80.5' is no port"),
        ("serve --workers 0", "argument --workers: '0' is no number of processes; write a numb"),
        ("serve --workers 65", "argument --workers: '65' is no number of processes"),
        ("create-token --email e --name n --expires-in 1096d", "'1096d' is too long: a token"),
        ("create-token --email e --name n --expires-in 26281h", "'26281h' is too long"),
        ("create-token --email e --name n --expires-in 1" + "0" * 30 + "d", "is too long"),
        ("create-token --email e --name n --expires-in soon", "'soon' is no duration; write e."),
        ("create-token --email e --name n --expires-in 0h", "'0h' is no duration"),
        ("create-token --email e --name n --expires-in ²d", "'²d' is no duration"),
        ("create-token --email e --name n --expires-in 5", "'5' is no duration"),
    ],
)
def test_a_command_line_that_does_not_parse_is_one_line(
    arguments: str, said: str, capsys: pytest.CaptureFixture[str]
):
    with pytest.raises(SystemExit) as exited:
        main(arguments.split())
    assert exited.value.code == 1
    refused = capsys.readouterr().err
    assert refused.startswith("error: graphql-api") and refused.count("\n") == 1, refused
    assert said in refused and refused.rstrip().endswith(" --help`)"), refused


def test_a_command_line_that_does_not_parse_is_one_line_of_the_process():
    assert_refused(
        cli(os.environ, "serve", "--workers", "0"),
        "error: graphql-api serve: argument --workers: '0' is no number of processes",
        "(see `graphql-api serve --help`)",
    )


def test_version_of_the_installed_command():
    installed = shutil.which("graphql-api", path=str(Path(sys.executable).parent))
    assert installed is not None, "the console script is installed beside this Python"
    shown = subprocess.run(
        [installed, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 0
    assert shown.stdout.strip() == f"graphql-api {importlib.metadata.version('graphql-api')}"
