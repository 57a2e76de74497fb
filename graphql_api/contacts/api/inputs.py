"""GraphQL inputs of contacts."""

from __future__ import annotations

import strawberry

from graphql_api.contacts.api.types import ContactKindType


@strawberry.input(description="A contact's fields. On update, absent fields stay unchanged.")
class ContactInput:
    kind: ContactKindType | None = strawberry.field(
        default=strawberry.UNSET, description="PERSON (default) or ORGANISATION."
    )
    first_name: str | None = strawberry.field(default=strawberry.UNSET, description="First name.")
    last_name: str | None = strawberry.field(default=strawberry.UNSET, description="Last name.")
    organisation_name: str | None = strawberry.field(
        default=strawberry.UNSET, description="Organisation name; required for organisations."
    )
    email: str | None = strawberry.field(default=strawberry.UNSET, description="E-mail address.")
    phone: str | None = strawberry.field(default=strawberry.UNSET, description="Phone number.")
    street: str | None = strawberry.field(default=strawberry.UNSET, description="Street.")
    postal_code: str | None = strawberry.field(default=strawberry.UNSET, description="Postal code.")
    city: str | None = strawberry.field(default=strawberry.UNSET, description="City.")
    external_id: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="The contact's number in another system (at most 100 characters); "
        "unique: no two contacts share one.",
    )
