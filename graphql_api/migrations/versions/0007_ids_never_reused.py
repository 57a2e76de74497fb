"""SQLite never hands out an id again: AUTOINCREMENT on every table with public ids

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 09:00:00

SQLite gives a new row the largest id plus one, so deleting the newest row made its id
come back, naming another object in links, logs and clients' caches. AUTOINCREMENT can
only be set by rebuilding a table (Alembic's batch mode: a copy with every row, index and
constraint, then swapped in); ``migrations.runner`` runs migrations with foreign keys off
on SQLite, or dropping the old table would take the rows that refer to it along, and
checks them all afterwards. PostgreSQL's sequences never reuse an id: nothing to do there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
compatibility: str = "expand"
"""An expand: SQLite's tables are rebuilt with the same columns; nothing else changes.
(docs/upgrades.md)"""

TABLES = (
    "staff_roles",
    "users",
    "api_tokens",
    "audit_log",
    "contacts",
    "email_templates",
    "groups",
    "membership_events",
    "outbox_events",
    "outbox_deliveries",
)


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
