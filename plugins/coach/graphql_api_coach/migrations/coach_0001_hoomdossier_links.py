"""Hoomdossier links of coaches (the coach plugin's own history).

Revision ID: coach_0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from graphql_api.plugin import UtcDateTime

revision: str = "coach_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coach_hoomdossier_links",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.String(length=100), nullable=False),
        sa.Column("linked_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_coach_hoomdossier_links_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_coach_hoomdossier_links")),
        sa.UniqueConstraint("account_id", name=op.f("uq_coach_hoomdossier_links_account_id")),
    )


def downgrade() -> None:
    op.drop_table("coach_hoomdossier_links")
