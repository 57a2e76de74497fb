"""Which code can serve the schema a database has: the rule readiness and the commands'
preflight follow during a rolling upgrade (docs/upgrades.md).

Each migration declares its ``compatibility``: ``"expand"`` when it only adds (a table, a
nullable column), so whatever code served the schema before serves it after;
``"contract"`` when it removes only what the code of its parent revision no longer uses,
so that code serves it and older code does not; ``"breaking"``, or nothing, when no older
code serves it. Code of an older release cannot read a newer release's migration files,
so every migration run writes down, in ``schema_compatibility``, the revisions whose code
can serve the schema now applied. A process whose code is older than the database then
asks whether its own head is among them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from alembic.script import Script, ScriptDirectory
from alembic.util import to_tuple
from sqlalchemy import (
    Column,
    MetaData,
    String,
    Table,
    column,
    delete,
    insert,
    inspect,
    select,
    table,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

COMPATIBILITY_TABLE = "schema_compatibility"

# Not in the models' metadata: like Alembic's version tables it belongs to the migrations,
# and a release's models never map it.
compatibility = Table(
    COMPATIBILITY_TABLE,
    MetaData(),
    Column("version_table", String(100), primary_key=True),
    Column("revision", String(32), primary_key=True),
)


EXPAND = "expand"
CONTRACT = "contract"
BREAKING = "breaking"
KINDS = (EXPAND, CONTRACT, BREAKING)


class UnknownCompatibility(ValueError):
    """A migration declares a compatibility that is none of ``KINDS``."""


def declared(revision: Script) -> str:
    """What a migration declares; an undeclared one counts as breaking, the safe guess.
    Raises ``UnknownCompatibility`` for anything else, a typo most likely."""
    kind = getattr(revision.module, "compatibility", BREAKING)
    if kind not in KINDS:
        raise UnknownCompatibility(
            f"migration {revision.revision} ({revision.path}) declares compatibility = "
            f"{kind!r}, which is none of {', '.join(map(repr, KINDS))}"
        )
    return kind


def serving_revisions(script: ScriptDirectory, applied: Iterable[str]) -> set[str]:
    """The revisions whose code can serve a database at ``applied``: each applied revision,
    its ancestors for as long as the migrations between are expands, and the parent of
    the contract where that ends."""
    found: set[str] = set()
    todo = list(applied)
    while todo:
        revision = script.get_revision(todo.pop())
        if revision is None or revision.revision in found:
            continue
        found.add(revision.revision)
        parents = to_tuple(revision.down_revision, default=())
        kind = declared(revision)
        if kind == EXPAND:
            todo.extend(parents)
        elif kind == CONTRACT:
            # Only the parent's code: older code may use what the contract removed.
            found.update(parents)
    return found


def record(connection: Connection, script: ScriptDirectory, version_table: str) -> None:
    """Write down which code can serve the schema ``version_table``'s history is now at;
    called by the Alembic environment after each run, downgrades included."""
    compatibility.create(connection, checkfirst=True)
    applied = applied_revisions(connection, version_table)
    connection.execute(delete(compatibility).where(compatibility.c.version_table == version_table))
    serving = serving_revisions(script, applied)
    if serving:
        connection.execute(
            insert(compatibility),
            [{"version_table": version_table, "revision": revision} for revision in serving],
        )


@dataclass(frozen=True)
class History:
    """What this process's code knows of one history (a version table): its heads and
    every revision in its files."""

    heads: frozenset[str]
    known: frozenset[str]

    @classmethod
    def of(cls, script: ScriptDirectory) -> History:
        """Read from the files; raises ``UnknownCompatibility`` when a migration declares
        none of ``KINDS``, so a typo stops every command, not a later upgrade."""
        revisions = list(script.walk_revisions())
        for revision in revisions:
            declared(revision)
        return cls(
            frozenset(script.get_heads()),
            frozenset(revision.revision for revision in revisions),
        )


@dataclass
class SchemaState:
    """How the database's schema stands to this code, by version table: ``behind`` (the
    code has migrations the database lacks), ``ahead`` (the database has migrations the
    code does not know, and its record says this code serves them) and ``incompatible``
    (it has, and does not say so). Every table in none of these is at this code's heads."""

    behind: list[str] = field(default_factory=list)
    ahead: list[str] = field(default_factory=list)
    incompatible: list[str] = field(default_factory=list)

    @property
    def servable(self) -> bool:
        """Whether this code can serve the database: it is at the newest schema or ahead
        of the code, compatibly."""
        return not self.behind and not self.incompatible


async def schema_state(engine: AsyncEngine, newest: Mapping[str, History]) -> SchemaState:
    """How the database stands to the histories in ``newest``; raises when it does not
    answer."""

    def compare(connection: Connection) -> SchemaState:
        state = SchemaState()
        for version_table, history in newest.items():
            applied = applied_revisions(connection, version_table)
            if applied == history.heads:
                continue
            if applied <= history.known:
                state.behind.append(version_table)
            elif history.heads <= _serving(connection, version_table):
                state.ahead.append(version_table)
            else:
                state.incompatible.append(version_table)
        return state

    async with engine.connect() as connection:
        return await connection.run_sync(compare)


def applied_revisions(connection: Connection, version_table: str) -> set[str]:
    """The revisions the database has applied of one history (none: not migrated yet)."""
    # Read directly: Alembic's MigrationContext would log each time a probe asks.
    if not inspect(connection).has_table(version_table):
        return set()
    versions = table(version_table, column("version_num"))
    return set(connection.scalars(select(versions.c.version_num)))


def _serving(connection: Connection, version_table: str) -> set[str]:
    if not inspect(connection).has_table(COMPATIBILITY_TABLE):
        return set()
    chosen = select(compatibility.c.revision).where(compatibility.c.version_table == version_table)
    return set(connection.scalars(chosen))
