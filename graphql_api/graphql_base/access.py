"""Permissions on GraphQL fields: a field a principal may not read is refused, not null.

Mutations need nothing here: their domain services check the permission themselves and
``run_mutation`` turns the refusal into a ``FORBIDDEN`` entry of the payload's errors.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from graphql_api.graphql_base.errors import PublicError


class Needs(BasePermission):
    """Grants a field to a principal holding ``permission``."""

    def __init__(self, permission: str) -> None:
        self.permission = permission
        self.message = f"This needs the permission '{permission}', which you lack."

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return bool(info.context.principal.can(self.permission))

    def on_unauthorized(self) -> None:
        raise PublicError(self.message or "", code="FORBIDDEN")


def needs(permission: str) -> list[FieldExtension]:
    """The field extensions refusing a principal without ``permission``."""
    return [PermissionExtension([Needs(permission)], use_directives=False)]


def needing(permission: str, description: str) -> str:
    """A field's description, ending with the permission it needs; the authorization
    test reads it back."""
    return f"{description} Needs `{permission}`."


def guarded_field(permission: str, description: str, **options: Any) -> Any:
    """``strawberry.field`` readable only with ``permission``, which its description names."""
    return strawberry.field(
        description=needing(permission, description), extensions=needs(permission), **options
    )
