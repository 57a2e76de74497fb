"""Creating, changing and finding contacts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import CONTACT_TEXT_FIELDS, Contact, ContactKind
from graphql_api.groups.changes import ContactsUpdated
from graphql_api.groups.derived import after_contacts_changed
from graphql_api.groups.graph import lock_graph
from graphql_api.groups.rules import rules_of
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
    "external_id": 100,
}
NAME_FIELDS = frozenset({"first_name", "last_name", "organisation_name"})
"""Shown in lists and pickers: held to the rules of names (no control characters, ...)."""


def cleaned_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (column name -> new value) held to the rules of each field alone: trimmed,
    within their lengths, an e-mail address that is one, the kind a ``ContactKind``; or
    every problem raised at once."""
    problems = Problems()
    unknown = set(values) - {*CONTACT_TEXT_FIELDS, "kind"}
    if unknown:
        raise ValueError(f"unknown contact fields: {sorted(unknown)}")
    cleaned: dict[str, Any] = {}
    for column, value in values.items():
        if column == "kind":
            if value is None:
                problems.add(["kind"], ErrorCode.REQUIRED, "kind cannot be cleared.")
            else:
                cleaned["kind"] = ContactKind(value)
        elif column == "email":
            cleaned["email"] = clean_email(problems, ["email"], value)
        else:
            cleaned[column] = clean_text(
                problems,
                [column],
                value,
                max_length=TEXT_LIMITS[column],
                name=column in NAME_FIELDS,
            )
    problems.raise_if_any()
    return cleaned


def check_complete(fields: Mapping[str, Any]) -> None:
    """The rules of a whole contact (its ``kind`` and names): an organisation has a name,
    a person a first or last name."""
    kind = fields.get("kind") or ContactKind.PERSON
    if kind is ContactKind.ORGANISATION and not fields.get("organisation_name"):
        raise UserInputError.single(
            ["organisation_name"], ErrorCode.REQUIRED, "An organisation needs an organisationName."
        )
    if kind is ContactKind.PERSON and not (fields.get("first_name") or fields.get("last_name")):
        raise UserInputError.single(
            ["last_name"], ErrorCode.REQUIRED, "A person needs a firstName or a lastName."
        )


def apply_values(contact: Contact, values: Mapping[str, Any]) -> None:
    """Validate ``values`` (column name -> new value) and set them, or raise with every
    problem. Whether an external id is free is the database's to say
    (``check_external_id_free``)."""
    for column, value in cleaned_values(values).items():
        setattr(contact, column, value)
    check_complete({name: getattr(contact, name) for name in ("kind", *NAME_FIELDS)})


async def check_external_id_free(session: AsyncSession, contact: Contact) -> None:
    """Refuse an external id another contact has (``DUPLICATE``)."""
    if contact.external_id is None:
        return
    taken = select(Contact.id).where(
        Contact.external_id == contact.external_id, Contact.id != (contact.id or 0)
    )
    holder = await session.scalar(taken.execution_options(autoflush=False))
    if holder is not None:
        raise UserInputError.single(
            ["external_id"],
            ErrorCode.DUPLICATE,
            f"Contact {holder} has this externalId already.",
        )


@requires("contacts.manage")
async def create_contact(
    session: AsyncSession, actor: Principal, values: Mapping[str, Any]
) -> Contact:
    """Add a contact; ``values`` maps column names to values, absent ones stay empty."""
    await lock_graph(session, shared=True)
    contact = Contact(kind=ContactKind.PERSON)
    apply_values(contact, values)
    await check_external_id_free(session, contact)
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
    apply_values(contact, changes)
    await check_external_id_free(session, contact)
    await session.flush()
    changed = ", ".join(sorted(changes)) or "nothing"
    cause = f"contact {contact.id}'s {changed} changed"
    await after_contacts_changed(session, [contact.id], cause, actor.user_id, changes)
    await record_updated(session, [contact.id], changes, actor.user_id, cause)
    return contact


async def record_updated(
    session: AsyncSession,
    contact_ids: Sequence[int],
    columns: Iterable[str],
    actor_id: int | None,
    cause: str,
    job_id: int | None = None,
) -> None:
    """Tell plugins that these contacts' ``columns`` were set (``contacts.updated``), for
    the systems that keep a copy of them; nothing when no column was."""
    fields = tuple(sorted({_graphql_name(column) for column in columns}))
    if contact_ids and fields:
        change = ContactsUpdated(tuple(contact_ids), fields, actor_id, cause, job_id)
        await rules_of(session).changed(session, change)


def _graphql_name(column: str) -> str:
    """``first_name`` -> ``firstName``: the field's name in the schema and in events."""
    first, *rest = column.split("_")
    return first + "".join(part.capitalize() for part in rest)
