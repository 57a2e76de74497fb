"""Per-connection scratch tables in which a refresh of derived membership keeps its work.

A refresh of derived groups for thousands of contacts must not carry a Python row per
(group, contact) pair: the contacts it is limited to, and how what the groups hold now
differs from what is stored, are written into temporary tables and moved from there with
``INSERT … SELECT``.

Every refresh takes its own ``run`` number, so a refresh started from inside another (a
plugin reacting to a change by reporting more changed contacts) leaves the outer one's
rows alone. The rows go when the refresh ends, or with the transaction's rollback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

from sqlalchemy import Connection, Engine, Pool, event, text
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.kernel.db import TRANSACTION_POOLED
from graphql_api.kernel.sql import id_list

CANDIDATES = "scratch_candidates"
"""Contacts a refresh is limited to: ``(run, contact_id)``."""
DELTA = "scratch_delta"
"""Entries (``entered`` 1) and exits (0) of the refresh: ``(run, group_id, contact_id)``."""

_TABLES = {
    CANDIDATES: "run INTEGER NOT NULL, contact_id INTEGER NOT NULL, PRIMARY KEY (run, contact_id)",
    # No key: written once and read whole, which costs less than keeping an index.
    DELTA: "run INTEGER NOT NULL, group_id INTEGER NOT NULL, contact_id INTEGER NOT NULL, "
    "entered INTEGER NOT NULL",
}
_RUNS = count(1)


_MADE = "scratch_tables_made"
"""Key of a database connection's ``info``: its scratch tables exist, made by a
transaction that committed."""
_MAKING = "scratch_tables_making"
"""Key of a database connection's ``info``: this transaction made them (DDL is
transactional on both databases: a rollback unmakes them)."""
FEW = 100
"""Up to this many contacts, a run's candidates are bound into its statements instead of
stored: a single contact's edit costs a statement less."""


async def begin_run(session: AsyncSession) -> int:
    """Make the scratch tables if this connection has none yet; a new run's number."""
    info = (await session.connection()).info
    if not (info.get(_MADE) or info.get(_MAKING)):
        # Behind a transaction-mode pooler the next transaction may run on a server
        # connection that another client's transaction used last: the tables are looked
        # for in each transaction, and none of their rows outlives it.
        pooled = " ON COMMIT DELETE ROWS" if info.get(TRANSACTION_POOLED) else ""
        for name, columns in _TABLES.items():
            await session.execute(
                text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({columns}){pooled}")
            )
        info[_MAKING] = True
    return next(_RUNS)


@event.listens_for(Engine, "commit")
def _made(connection: Connection) -> None:
    if connection.info.pop(_MAKING, False) and not connection.info.get(TRANSACTION_POOLED):
        connection.info[_MADE] = True


@event.listens_for(Engine, "rollback")
@event.listens_for(Engine, "rollback_savepoint")
def _unmade(connection: Connection, *_: object) -> None:
    # An invalidated connection (the server ended it) has no info to read, nor tables.
    if not connection.invalidated:
        connection.info.pop(_MAKING, None)


@event.listens_for(Pool, "reset")
def _unmade_on_reset(dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
    """The pool rolls back what a connection handed back left open."""
    connection_record.info.pop(_MAKING, None)


async def end_run(session: AsyncSession, run: int, candidates: Candidates | Sequence[int]) -> None:
    """Drop the run's rows (a long transaction may refresh many times)."""
    tables = [DELTA, *([CANDIDATES] if isinstance(candidates, Candidates) else [])]
    for name in tables:
        await session.execute(text(f"DELETE FROM {name} WHERE run = :run"), {"run": run})


@dataclass(frozen=True)
class Candidates:
    """The contacts stored for a run, to limit a computation to them."""

    run: int


async def fill_candidates(
    session: AsyncSession, run: int, contact_ids: Sequence[int]
) -> Candidates | Sequence[int]:
    """The contacts of a run: up to ``FEW`` as they are, more stored in one statement
    (the ids are one bound list)."""
    if len(contact_ids) <= FEW:
        return contact_ids
    source = (
        "SELECT DISTINCT unnest(:ids) AS id"
        if session.bind.dialect.name == "postgresql"
        else "SELECT DISTINCT value AS id FROM json_each(:ids)"
    )
    statement = text(
        f"INSERT INTO {CANDIDATES} (run, contact_id) SELECT :run, v.id FROM ({source}) AS v"
    ).bindparams(id_list("ids"))
    await session.execute(statement, {"run": run, "ids": list(contact_ids)})
    return Candidates(run)
