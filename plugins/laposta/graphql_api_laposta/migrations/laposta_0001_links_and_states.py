"""Laposta links, member states and resync rows (the laposta plugin's own history).

Revision ID: laposta_0001
Revises:
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from graphql_api.plugin import UtcDateTime

revision: str = "laposta_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "laposta_links",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.String(length=50), nullable=False),
        sa.Column("linked_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("linked_by_id", sa.Integer(), nullable=True),
        sa.Column("last_pulled_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_laposta_links_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_laposta_links")),
        sa.UniqueConstraint("list_id", name=op.f("uq_laposta_links_list_id")),
    )
    op.create_table(
        "laposta_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("member_id", sa.String(length=50), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_laposta_members_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_laposta_members_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "contact_id", name=op.f("pk_laposta_members")),
    )
    op.create_index("ix_laposta_members_group_id_state", "laposta_members", ["group_id", "state"])
    op.create_index("ix_laposta_members_member_id", "laposta_members", ["member_id"])
    op.create_table(
        "laposta_resync_rows",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("member_id", sa.String(length=50), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("list_state", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("job_id", "item", name=op.f("pk_laposta_resync_rows")),
    )


def downgrade() -> None:
    op.drop_table("laposta_resync_rows")
    op.drop_index("ix_laposta_members_member_id", table_name="laposta_members")
    op.drop_index("ix_laposta_members_group_id_state", table_name="laposta_members")
    op.drop_table("laposta_members")
    op.drop_table("laposta_links")
