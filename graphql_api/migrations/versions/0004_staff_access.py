"""staff roles, expiring and revocable API tokens, the audit log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 06:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import graphql_api.kernel.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
compatibility: str = "breaking"
"""Breaking: users.is_admin goes and users.role_id is required. (docs/upgrades.md)"""

# Frozen here as they were at this revision; later changes to the built-in roles need a
# migration of their own.
BUILT_IN_ROLES = [
    (1, "admin", "Everything, including the permissions plugins add.", ["*"]),
    (
        2,
        "manager",
        "Groups, members, contacts and e-mail templates.",
        [
            "contacts.manage",
            "contacts.view",
            "groups.manage",
            "groups.view",
            "members.manage",
            "templates.manage",
            "templates.view",
        ],
    ),
    (
        3,
        "viewer",
        "Reads groups, contacts and templates; changes nothing.",
        ["contacts.view", "groups.view", "templates.view"],
    ),
]
ADMIN, MANAGER = 1, 2


def upgrade() -> None:
    roles = op.create_table(
        "staff_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("built_in", sa.Boolean(), nullable=False),
        sa.Column("created_at", graphql_api.kernel.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_staff_roles_name")),
    )
    op.bulk_insert(
        roles,
        [
            {
                "id": pk,
                "name": name,
                "description": description,
                "permissions": permissions,
                "built_in": True,
                "created_at": datetime.now(UTC),
            }
            for pk, name, description, permissions in BUILT_IN_ROLES
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SELECT setval('staff_roles_id_seq', 3)")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("role_id", sa.Integer(), nullable=True))
    # Admins stay admins; everyone else could do all but deliveries before: managers.
    op.execute(
        sa.text(
            "UPDATE users SET role_id = CASE WHEN is_admin THEN :admin ELSE :manager END"
        ).bindparams(admin=ADMIN, manager=MANAGER)
    )
    with op.batch_alter_table("users") as batch:
        batch.alter_column("role_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(
            op.f("fk_users_role_id_staff_roles"), "staff_roles", ["role_id"], ["id"]
        )
        batch.create_index(op.f("ix_users_role_id"), ["role_id"], unique=False)
        batch.drop_column("is_admin")
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column("name", sa.String(length=100), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("permissions", sa.JSON(), nullable=True))
        for column in ("expires_at", "last_used_at", "revoked_at"):
            batch.add_column(
                sa.Column(column, graphql_api.kernel.db.UtcDateTime(timezone=True), nullable=True)
            )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("occurred_at", graphql_api.kernel.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_audit_log_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_occurred_at"), "audit_log", ["occurred_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_occurred_at"), table_name="audit_log")
    op.drop_table("audit_log")
    with op.batch_alter_table("api_tokens") as batch:
        for column in ("revoked_at", "last_used_at", "expires_at", "permissions", "name"):
            batch.drop_column(column)
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(sa.text("UPDATE users SET is_admin = (role_id = :admin)").bindparams(admin=ADMIN))
    with op.batch_alter_table("users") as batch:
        batch.drop_index(op.f("ix_users_role_id"))
        batch.drop_constraint(op.f("fk_users_role_id_staff_roles"), type_="foreignkey")
        batch.drop_column("role_id")
    op.drop_table("staff_roles")
