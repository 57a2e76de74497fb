"""GraphQL queries of contacts: one contact, and the ``contacts`` list with a search and
a preview of a dynamic-group filter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy import Select, select

from graphql_api.contacts import models
from graphql_api.contacts.api.types import Contact
from graphql_api.contacts.search import contact_search
from graphql_api.graphql_base.access import guarded_field
from graphql_api.graphql_base.compiled import ById, PageOf, compiled
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import PublicError
from graphql_api.graphql_base.relay import After, Connection, First, paginate, query_id
from graphql_api.graphql_base.text_inputs import query_search
from graphql_api.groups.membership_reads import filter_contacts
from graphql_api.kernel.errors import UserInputError
from graphql_api.kernel.pagination import Ordering

if TYPE_CHECKING:
    from graphql_api.groups.api.filters import ContactFilterInput

ContactFilterInputRef = Annotated[
    "ContactFilterInput", strawberry.lazy("graphql_api.groups.api.filters")
]
CONTACTS_BY_ID = Ordering((models.Contact.id,))


def _unfiltered(_: None, arguments: Mapping[str, Any]) -> tuple[Select[Any], Ordering] | None:
    """``contacts`` without a filter, for compiled reads; a filter is the resolver's."""
    if arguments.get("filter") is not None:
        return None
    query = select(models.Contact)
    term = query_search(arguments.get("search"))
    return (query.where(contact_search(term)) if term else query), CONTACTS_BY_ID


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
    @guarded_field(
        "contacts.view",
        "One contact by id; null when it does not exist.",
        metadata=compiled(ById(models.Contact, "Contact")),
    )
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
        metadata=compiled(PageOf(models.Contact, _unfiltered)),
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
        if filter is None:
            query, ordering = _unfiltered(None, {"search": search})  # type: ignore[misc]
        else:
            query = await _filtered(info, select(models.Contact), filter)
            term = query_search(search)
            query, ordering = (query.where(contact_search(term)) if term else query), CONTACTS_BY_ID
        return await paginate(
            info, query, ordering, first=first, after=after, key_of=lambda c: (c.id,)
        )
