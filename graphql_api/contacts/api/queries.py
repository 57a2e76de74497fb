"""GraphQL queries of contacts: one contact, and the ``contacts`` list with a search and
a preview of a dynamic-group filter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import select

from graphql_api.api.access import guarded_field
from graphql_api.api.context import Info
from graphql_api.api.errors import PublicError
from graphql_api.api.relay import After, Connection, First, paginate, query_id
from graphql_api.api.text_inputs import query_search
from graphql_api.contacts import models
from graphql_api.contacts.api.types import Contact
from graphql_api.contacts.search import contact_search
from graphql_api.groups.membership_reads import filter_contacts
from graphql_api.kernel.errors import UserInputError
from graphql_api.kernel.pagination import Ordering

if TYPE_CHECKING:
    from graphql_api.groups.api.filters import ContactFilterInput

ContactFilterInputRef = Annotated[
    "ContactFilterInput", strawberry.lazy("graphql_api.groups.api.filters")
]
CONTACTS_BY_ID = Ordering((models.Contact.id,))


async def _filtered(info: Info, query: Any, filter: Any) -> Any:
    """``query`` narrowed by a dynamic-group filter; a bad filter is a top-level error."""
    try:
        tree = filter.to_domain()
        return await info.context.db.run(lambda session: filter_contacts(session, query, tree))
    except UserInputError as error:
        details = " ".join(f"{'.'.join(p.field)}: {p.message}" for p in error.problems)
        raise PublicError(f"Invalid filter: {details}") from error


@strawberry.type
class ContactQueries:
    @guarded_field("contacts.view", "One contact by id; null when it does not exist.")
    async def contact(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Global id of the contact.")],
    ) -> Contact | None:
        return await info.context.row(models.Contact, query_id(id, "Contact"))

    @guarded_field(
        "contacts.view",
        "Contacts, oldest first, optionally narrowed by a filter (to preview who "
        "a dynamic group would hold) and a search.",
    )
    async def contacts(
        self,
        info: Info,
        filter: Annotated[
            ContactFilterInputRef | None,
            strawberry.argument(description="Only contacts matching this dynamic-group filter."),
        ] = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Case-insensitive text in name, e-mail, postal code or city."
            ),
        ] = None,
        first: First = None,
        after: After = None,
    ) -> Connection[Contact]:
        query = select(models.Contact)
        if filter is not None:
            query = await _filtered(info, query, filter)
        term = query_search(search)
        if term:
            query = query.where(contact_search(term))
        return await paginate(
            info, query, CONTACTS_BY_ID, first=first, after=after, key_of=lambda c: (c.id,)
        )
