"""mail opt-outs (a contact's "afmelden" of a group's mail) and the schedules of the jobs
plugins start every so often

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from graphql_api.kernel.db import UtcDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
compatibility: str = "expand"
"""An expand: two new tables, which code from before never reads. (docs/upgrades.md)"""


def upgrade() -> None:
    op.create_table(
        "mail_opt_outs",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "UNSUBSCRIBE_LINK",
                "MAILING_LIST",
                "PORTAL",
                "STAFF",
                name="optoutsource",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_mail_opt_outs_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_mail_opt_outs_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "group_id", name=op.f("pk_mail_opt_outs")),
    )
    op.create_index(op.f("ix_mail_opt_outs_group_id"), "mail_opt_outs", ["group_id"])
    op.create_table(
        "job_schedules",
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("next_run_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_schedules")),
    )


def downgrade() -> None:
    op.drop_table("job_schedules")
    op.drop_index(op.f("ix_mail_opt_outs_group_id"), table_name="mail_opt_outs")
    op.drop_table("mail_opt_outs")
