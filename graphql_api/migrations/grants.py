"""What migrations change of the built-in staff roles: a permission a new feature brings
is granted to a role when it is added, and taken back when the migration is undone."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

ROLES = sa.table(
    "staff_roles",
    sa.column("id", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("built_in", sa.Boolean()),
    sa.column("permissions", sa.JSON()),
)
"""The table as the migrations see it, whatever the models say of it later."""


def change_built_in_role(role: str, permission: str, *, grant: bool) -> None:
    """Give (``grant``) or take the built-in ``role`` ``permission``; a database without
    that role (an admin deleted it? built-in ones cannot be) is left as it is."""
    connection = op.get_bind()
    found = connection.execute(
        sa.select(ROLES.c.id, ROLES.c.permissions).where(ROLES.c.name == role, ROLES.c.built_in)
    ).first()
    if found is None:
        return
    others = [p for p in found.permissions if p != permission]
    permissions = sorted([*others, permission]) if grant else others
    connection.execute(
        sa.update(ROLES).where(ROLES.c.id == found.id).values(permissions=permissions)
    )
