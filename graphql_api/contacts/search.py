"""Finding contacts by a piece of text."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, literal, or_

from graphql_api.contacts.models import Contact
from graphql_api.kernel.repository import escape_like


def contact_search(term: str) -> ColumnElement[bool]:
    """Case-insensitive match of ``term`` anywhere in a contact's names (first, last, full,
    organisation), e-mail, postal code or city; both sides are lowered by the database."""
    pattern = func.lower(literal("%" + escape_like(term.strip()) + "%"))
    columns = (
        Contact.first_name,
        Contact.last_name,
        Contact.organisation_name,
        Contact.email,
        Contact.city,
        Contact.postal_code,
    )
    full_name = func.coalesce(Contact.first_name, "") + " " + func.coalesce(Contact.last_name, "")
    return or_(
        func.lower(full_name).like(pattern, escape="\\"),
        *(func.lower(column).like(pattern, escape="\\") for column in columns),
    )
