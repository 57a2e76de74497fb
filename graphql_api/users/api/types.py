"""GraphQL object type of staff users."""

from __future__ import annotations

from datetime import datetime

import strawberry

from graphql_api.api.relay import Node, global_id_field, rows_of
from graphql_api.users import models


@strawberry.type(description="A staff member of the cooperative (gebruiker).")
class User(Node):
    name: str = strawberry.field(description="Full name.")
    email: str = strawberry.field(description="E-mail address; also the login.")
    is_active: bool = strawberry.field(description="Whether the user can still sign in.")
    is_admin: bool = strawberry.field(description="Whether the user administers the service.")
    created_at: datetime = strawberry.field(description="When the user was created.")

    id: strawberry.ID = global_id_field("User")
    is_type_of = rows_of(models.User)
