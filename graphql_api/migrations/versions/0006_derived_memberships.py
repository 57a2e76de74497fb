"""derived memberships kept in a table, maintained member counts, the cause of a
derived entry or exit in the history

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 06:10:00

The table is filled, and the counts of derived groups set, right after this revision by
``migrations.runner.upgrade`` (computing members needs the application's filter fields).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import graphql_api.kernel.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
compatibility: str = "breaking"
"""Breaking: code from before it changes members without keeping the stored derived
memberships and member counts this schema's code reads. (docs/upgrades.md)"""

OLD_SOURCES = ("MANUAL", "BULK", "PORTAL", "API", "IMPORT", "CONVERSION")
NEW_SOURCES = (*OLD_SOURCES, "DERIVED")


def _sources(values: Sequence[str]) -> str:
    return "source IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "derived_memberships",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("since", graphql_api.kernel.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_derived_memberships_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_derived_memberships_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "contact_id", name=op.f("pk_derived_memberships")),
    )
    op.create_index(
        "ix_derived_memberships_contact_id_group_id",
        "derived_memberships",
        ["contact_id", "group_id"],
    )
    with op.batch_alter_table("groups") as batch:
        batch.add_column(
            sa.Column("member_count", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE groups SET member_count = "
        "(SELECT count(*) FROM memberships WHERE memberships.group_id = groups.id)"
    )
    with op.batch_alter_table("membership_events") as batch:
        batch.add_column(sa.Column("cause", sa.String(length=300), nullable=True))
        batch.drop_constraint(op.f("ck_membership_events_membershipsource"), type_="check")
        batch.create_check_constraint("membershipsource", sa.text(_sources(NEW_SOURCES)))


def downgrade() -> None:
    op.execute("DELETE FROM membership_events WHERE source = 'DERIVED'")
    with op.batch_alter_table("membership_events") as batch:
        batch.drop_constraint(op.f("ck_membership_events_membershipsource"), type_="check")
        batch.create_check_constraint("membershipsource", sa.text(_sources(OLD_SOURCES)))
        batch.drop_column("cause")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("member_count")
    op.drop_index("ix_derived_memberships_contact_id_group_id", table_name="derived_memberships")
    op.drop_table("derived_memberships")
