"""imports: uploads, saved mappings, the rows of each import, a contact's external id,
and the permission contacts.import, granted to managers

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 18:00:00

Managers create and change contacts one by one already, so they may import them too, as
they may export them (0010); viewers may do neither unless an admin grants it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from graphql_api.kernel.db import UtcDateTime
from graphql_api.migrations.grants import change_built_in_role

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
compatibility: str = "expand"
"""An expand: new tables, a nullable column and an index, and a permission code from
before it never asks about. (docs/upgrades.md)"""

PERMISSION = "contacts.import"
ROW_STATUS = sa.Enum(
    "PENDING",
    "REJECTED",
    "CREATED",
    "UPDATED",
    "UNCHANGED",
    "SKIPPED",
    name="rowstatus",
    native_enum=False,
    create_constraint=True,
    length=20,
)


def upgrade() -> None:
    op.create_table(
        "import_mappings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_import_mappings_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_mappings")),
        sa.UniqueConstraint("name_key", name=op.f("uq_import_mappings_name_key")),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_uploads_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_uploads_owner_id"), "uploads", ["owner_id"], unique=False)
    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["uploads.id"],
            name=op.f("fk_upload_parts_upload_id_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", "number", name=op.f("pk_upload_parts")),
    )
    op.create_table(
        "import_rows",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("cells", sa.JSON(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("holds_cells", sa.Boolean(), nullable=False),
        sa.Column("match_key", sa.String(length=320), nullable=True),
        sa.Column("status", ROW_STATUS, nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("linked", sa.Boolean(), nullable=False),
        sa.Column("linked_groups", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("undo", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_import_rows_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "row", name=op.f("pk_import_rows")),
    )
    op.create_index(
        "ix_import_rows_job_id_match_key", "import_rows", ["job_id", "match_key"], unique=False
    )
    # A column and indexes, no table rebuild: SQLite keeps contacts AUTOINCREMENT (0007).
    op.add_column("contacts", sa.Column("external_id", sa.String(length=100), nullable=True))
    op.create_index(op.f("ix_contacts_external_id"), "contacts", ["external_id"], unique=True)
    op.create_index("ix_contacts_email_lower", "contacts", [sa.text("lower(email)")])
    change_built_in_role("manager", PERMISSION, grant=True)


def downgrade() -> None:
    change_built_in_role("manager", PERMISSION, grant=False)
    op.drop_index("ix_contacts_email_lower", table_name="contacts")
    op.drop_index(op.f("ix_contacts_external_id"), table_name="contacts")
    op.drop_column("contacts", "external_id")
    op.drop_index("ix_import_rows_job_id_match_key", table_name="import_rows")
    op.drop_table("import_rows")
    op.drop_table("upload_parts")
    op.drop_index(op.f("ix_uploads_owner_id"), table_name="uploads")
    op.drop_table("uploads")
    op.drop_table("import_mappings")
