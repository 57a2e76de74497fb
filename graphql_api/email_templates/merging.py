"""Merge fields: what a template can say of its recipient, their group and its responsible
user, the plugins' contact fields included, read for a whole batch of recipients at once.

The core's fields are ``contact.*`` (``CONTACT_MERGE_FIELDS``), ``group.*`` and
``group.responsible.*``; a plugin adds ``contact.<name>`` fields (``MergeField``, hook
``merge_fields``). A template is checked against the application's fields when it is
saved and before a mail goes out, so a name nobody defines is an error then, never an
empty text in three thousand mails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.email_templates.rendering import SAMPLE, TemplateProblem, check
from graphql_api.groups.filters import COLUMNS
from graphql_api.groups.models import Group
from graphql_api.groups.rules import rules_of
from graphql_api.kernel.sql import any_of
from graphql_api.users.models import User

LoadValues = Callable[[AsyncSession, Sequence[int]], Awaitable[Mapping[int, Any]]]

CONTACT_MERGE_FIELDS: dict[str, str] = {
    **{name: column for name, column in COLUMNS.items() if name not in ("kind", "createdAt")},
    "displayName": "display_name",
}
"""The core's ``contact.*`` fields, by merge name, with the contact's attribute."""


@dataclass(frozen=True)
class MergeField:
    """A ``contact.<name>`` merge field a plugin adds: ``load(session, contact_ids)``
    answers the values of many contacts in a few statements (a contact left out gets
    None); ``example`` is what a template is checked with."""

    name: str
    description: str
    example: Any
    load: LoadValues

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"merge field name {self.name!r} is not an identifier")


def merge_fields_of(session: AsyncSession) -> Mapping[str, MergeField]:
    """The plugins' merge fields of the application that made ``session``."""
    return rules_of(session).merge_fields


def sample(plugin_fields: Mapping[str, MergeField]) -> dict[str, Any]:
    """Every merge field with an example value, plugins' included: what a template is
    checked with."""
    contact = {**SAMPLE["contact"], **{name: f.example for name, f in plugin_fields.items()}}
    return {**SAMPLE, "contact": contact}


def merge_sample(session: AsyncSession) -> dict[str, Any]:
    """Every merge field of this application with an example value (Anna de Vries of
    Zwolle, and the plugins' examples): for a preview with no real recipient."""
    return sample(merge_fields_of(session))


async def check_template(session: AsyncSession, source: str) -> TemplateProblem | None:
    """Why ``source`` cannot be rendered with this application's merge fields within the
    budget (an unknown field, its syntax, its cost); None when it can."""
    return await check(source, merge_sample(session))


async def merge_values(
    session: AsyncSession, group_id: int | None, contact_ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """Each contact's merge fields, for a mail about ``group_id`` (None: no group), in one
    statement for the contacts, one for the group and one per plugin field, whatever the
    number of contacts. A contact that does not exist is left out. Plain values only: a
    template sees data, never objects with methods."""
    if not contact_ids:
        return {}
    contacts = (await session.scalars(select(Contact).where(any_of(Contact.id, contact_ids)))).all()
    group = await _group_fields(session, group_id)
    extra = {
        name: await merge_field.load(session, [c.id for c in contacts])
        for name, merge_field in merge_fields_of(session).items()
    }
    return {
        contact.id: {
            "contact": {
                **{name: getattr(contact, column) for name, column in CONTACT_MERGE_FIELDS.items()},
                **{name: values.get(contact.id) for name, values in extra.items()},
            },
            "group": group,
        }
        for contact in contacts
    }


async def _group_fields(session: AsyncSession, group_id: int | None) -> dict[str, Any]:
    found = (
        await session.execute(
            select(Group.name, Group.description, User.name, User.email)
            .outerjoin(User, User.id == Group.responsible_id)
            .where(Group.id == group_id)
        )
    ).first()
    name, description, responsible, email = found or (None, None, None, None)
    return {
        "name": name,
        "description": description,
        "responsible": {"name": responsible, "email": email},
    }
