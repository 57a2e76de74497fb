"""The energy plugin's own table: one energy label per contact.

Revision ID: energy_0001
Revises:
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "energy_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "energy_labels",
        sa.Column(
            "contact_id",
            sa.Integer(),
            sa.ForeignKey("contacts.id", name="fk_energy_labels_contact_id_contacts"),
            primary_key=True,
        ),
        sa.Column("label", sa.String(1), nullable=False),
    )
    op.create_index("ix_energy_labels_label", "energy_labels", ["label"])


def downgrade() -> None:
    op.drop_index("ix_energy_labels_label", table_name="energy_labels")
    op.drop_table("energy_labels")
