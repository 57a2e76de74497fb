"""Payloads more than one feature returns."""

from __future__ import annotations

import strawberry

from graphql_api.graphql_base.errors import UserError


@strawberry.type(description="Result of a delete.")
class DeletePayload:
    deleted_id: strawberry.ID | None = strawberry.field(
        default=None, description="Id of what was deleted."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")
