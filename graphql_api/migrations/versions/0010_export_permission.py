"""exports: the permission contacts.export, granted to managers, and single-use download links

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 15:00:00

Managers change contacts and groups already, so they may download them too; viewers read
one contact at a time and get no bulk copy of personal data unless an admin grants it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from graphql_api.kernel.db import UtcDateTime
from graphql_api.migrations.grants import change_built_in_role

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
compatibility: str = "expand"
"""An expand: a new table, and a permission code from before it never asks about.
(docs/upgrades.md)"""

PERMISSION = "contacts.export"


def upgrade() -> None:
    op.create_table(
        "export_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_export_links_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_export_links_token_hash")),
    )
    op.create_index(op.f("ix_export_links_user_id"), "export_links", ["user_id"], unique=False)
    change_built_in_role("manager", PERMISSION, grant=True)


def downgrade() -> None:
    change_built_in_role("manager", PERMISSION, grant=False)
    op.drop_index(op.f("ix_export_links_user_id"), table_name="export_links")
    op.drop_table("export_links")
