"""Creating, changing and finding contacts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import CONTACT_TEXT_FIELDS, Contact, ContactKind
from graphql_api.groups.derived import after_contacts_changed
from graphql_api.groups.graph import lock_graph
from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.errors import ErrorCode, Problems, UserInputError
from graphql_api.kernel.validation import clean_email, clean_text

TEXT_LIMITS = {
    "first_name": 200,
    "last_name": 200,
    "organisation_name": 200,
    "phone": 50,
    "street": 200,
    "postal_code": 20,
    "city": 200,
}
NAME_FIELDS = frozenset({"first_name", "last_name", "organisation_name"})
"""Shown in lists and pickers: held to the rules of names (no control characters, ...)."""


def _apply(contact: Contact, values: Mapping[str, Any]) -> None:
    """Validate ``values`` (column name -> new value) and set them, or raise with every problem."""
    problems = Problems()
    unknown = set(values) - {*CONTACT_TEXT_FIELDS, "kind"}
    if unknown:
        raise ValueError(f"unknown contact fields: {sorted(unknown)}")
    for column, value in values.items():
        if column == "kind":
            if value is None:
                problems.add(["kind"], ErrorCode.REQUIRED, "kind cannot be cleared.")
            else:
                contact.kind = ContactKind(value)
        elif column == "email":
            contact.email = clean_email(problems, ["email"], value)
        else:
            cleaned = clean_text(
                problems,
                [column],
                value,
                max_length=TEXT_LIMITS[column],
                name=column in NAME_FIELDS,
            )
            setattr(contact, column, cleaned)
    problems.raise_if_any()
    if contact.kind is ContactKind.ORGANISATION and not contact.organisation_name:
        raise UserInputError.single(
            ["organisation_name"], ErrorCode.REQUIRED, "An organisation needs an organisationName."
        )
    if contact.kind is ContactKind.PERSON and not (contact.first_name or contact.last_name):
        raise UserInputError.single(
            ["last_name"], ErrorCode.REQUIRED, "A person needs a firstName or a lastName."
        )


@requires("contacts.manage")
async def create_contact(
    session: AsyncSession, actor: Principal, values: Mapping[str, Any]
) -> Contact:
    """Add a contact; ``values`` maps column names to values, absent ones stay empty."""
    await lock_graph(session, shared=True)
    contact = Contact(kind=ContactKind.PERSON)
    _apply(contact, values)
    session.add(contact)
    await session.flush()
    await after_contacts_changed(
        session, [contact.id], f"contact {contact.id} was created", actor.user_id
    )
    return contact


@requires("contacts.manage")
async def update_contact(
    session: AsyncSession, actor: Principal, contact_id: int, changes: Mapping[str, Any]
) -> Contact:
    """Change the given columns of a contact; absent keys stay as they are."""
    await lock_graph(session, shared=True)
    contact = await session.get(Contact, contact_id)
    if contact is None:
        raise UserInputError.single(["contact_id"], ErrorCode.NOT_FOUND, "No contact with this id.")
    _apply(contact, changes)
    await session.flush()
    changed = ", ".join(sorted(changes)) or "nothing"
    cause = f"contact {contact.id}'s {changed} changed"
    await after_contacts_changed(session, [contact.id], cause, actor.user_id, changes)
    return contact
