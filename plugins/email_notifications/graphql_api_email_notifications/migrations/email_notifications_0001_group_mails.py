"""Group mails ("E-mail naar groep") and their recipients (the e-mail plugin's own tables).

Revision ID: email_notifications_0001
Revises:
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from graphql_api.plugin import UtcDateTime

revision: str = "email_notifications_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
compatibility = "expand"
"""Only new tables: code of the release before serves the schema after."""

MAILS = "email_notifications_group_mails"
RECIPIENTS = "email_notifications_group_mail_recipients"


def upgrade() -> None:
    op.create_table(
        MAILS,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("group_name", sa.String(length=200), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f(f"fk_{MAILS}_group_id_groups"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{MAILS}")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f(f"ix_{MAILS}_group_id"), MAILS, ["group_id"])
    op.create_table(
        RECIPIENTS,
        sa.Column("group_mail_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("sent_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_mail_id"],
            [f"{MAILS}.id"],
            name=op.f(f"fk_{RECIPIENTS}_group_mail_id_{MAILS}"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f(f"fk_{RECIPIENTS}_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_mail_id", "contact_id", name=op.f(f"pk_{RECIPIENTS}")),
    )
    op.create_index(
        f"ix_{RECIPIENTS}_status", RECIPIENTS, ["group_mail_id", "status", "contact_id"]
    )


def downgrade() -> None:
    op.drop_table(RECIPIENTS)
    op.drop_table(MAILS)
