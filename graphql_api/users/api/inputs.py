"""GraphQL input types of users, staff roles and API tokens."""

from __future__ import annotations

from datetime import datetime

import strawberry


@strawberry.input(description="A new staff user.")
class CreateUserInput:
    name: str = strawberry.field(description="Full name.")
    email: str = strawberry.field(description="E-mail address; unique.")
    role_id: strawberry.ID = strawberry.field(description="The staff role to hold.")


@strawberry.input(description="Changes to a staff user; absent fields stay.")
class UpdateUserInput:
    name: str | None = strawberry.field(default=strawberry.UNSET, description="Full name.")
    email: str | None = strawberry.field(default=strawberry.UNSET, description="E-mail address.")
    role_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Another staff role."
    )
    is_active: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="false deactivates the user: their tokens stop working at once.",
    )


@strawberry.input(description="A staff role: a name and the permissions it grants.")
class StaffRoleInput:
    name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Unique name (required when creating)."
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="What the role is for."
    )
    permissions: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Permission names (see `permissions`); they replace the earlier ones.",
    )


@strawberry.input(description="A new API token for yourself.")
class CreateApiTokenInput:
    name: str = strawberry.field(description="What it is for, e.g. 'website sync'.")
    expires_at: datetime | None = strawberry.field(
        default=None,
        description="When it stops working, with its time zone (`2030-01-01T00:00:00Z`), at "
        "most three years ahead; null never.",
    )
    permissions: list[str] | None = strawberry.field(
        default=None,
        description="Narrow it to these of your permissions, e.g. for an integration; "
        "null for all of yours.",
    )
