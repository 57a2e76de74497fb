"""The example plugin's own table.

Revision ID: example_0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "example_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "example_badges",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("group_name", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("example_badges")
