"""the membership history and the stored derived memberships check no reference per row

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 04:05:00

A bulk change writes hundreds of thousands of history rows and derived entries in a few
statements. PostgreSQL checks a foreign key with a trigger per row, which cost three
quarters of such a statement's time (``bench/RESULTS-writes.md``). These rows are written
only by the domain, from contacts and groups it has just read under lock; contacts and
users are never deleted (erasure empties a contact and keeps its row), and deleting a
group clears its derived rows and its history's reference itself (``lifecycle``), as the
constraints' cascades did. ``graphql-api check-membership`` reports a dangling row.
"""

from collections.abc import Callable, Sequence
from typing import Any

from alembic import op

from graphql_api.kernel.db import NAMING_CONVENTION

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
compatibility: str = "breaking"
"""Breaking: code from before it counted on the dropped foreign keys' cascades when it
deleted a group. (docs/upgrades.md)"""

REFERENCES = {
    "membership_events": (
        ("group_id", "groups", "SET NULL"),
        ("contact_id", "contacts", "CASCADE"),
        ("actor_id", "users", "SET NULL"),
    ),
    "derived_memberships": (
        ("group_id", "groups", "CASCADE"),
        ("contact_id", "contacts", "CASCADE"),
    ),
}
AUTOINCREMENT = {"membership_events": {"sqlite_autoincrement": True}, "derived_memberships": {}}


def _each_table(change: Callable[[Any, str, str, str, str], None]) -> None:
    """``change(batch, constraint name, column, referred table, on delete)`` per reference."""
    for table, references in REFERENCES.items():
        with op.batch_alter_table(
            table, table_kwargs=AUTOINCREMENT[table], naming_convention=NAMING_CONVENTION
        ) as batch:
            for column, referred, on_delete in references:
                change(batch, f"fk_{table}_{column}_{referred}", column, referred, on_delete)


def upgrade() -> None:
    _each_table(lambda batch, name, *_: batch.drop_constraint(name, type_="foreignkey"))


def downgrade() -> None:
    _each_table(
        lambda batch, name, column, referred, on_delete: batch.create_foreign_key(
            name, referred, [column], ["id"], ondelete=on_delete
        )
    )
