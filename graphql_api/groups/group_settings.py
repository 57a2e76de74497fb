"""The settings of a group, the fields of the "Nieuwe groep" form: checked and applied.

What a group is built from (composition, exclusions, filter) is ``groups.structure``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.email_templates.models import EmailTemplate
from graphql_api.groups.models import Group
from graphql_api.groups.rules import rules_of
from graphql_api.groups.structure import STRUCTURE
from graphql_api.kernel.errors import ErrorCode, Problems
from graphql_api.kernel.repository import missing_ids
from graphql_api.kernel.validation import clean_text, field_label, name_key
from graphql_api.users.models import User

MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 10_000

BOOLEAN_SETTINGS = (
    "show_on_portal",
    "show_on_contact",
    "editable_on_portal",
    "email_on_new_member",
    "closed",
)
SETTINGS = (
    *STRUCTURE,
    "name",
    "description",
    "responsible_id",
    "start_date",
    "end_date",
    "new_member_email_template_id",
    "neighbourhood_role",
    *BOOLEAN_SETTINGS,
)
"""Every value ``create_group`` and ``update_group`` take, by its domain name."""

REFERENCES: tuple[tuple[str, type[User] | type[EmailTemplate], str], ...] = (
    ("responsible_id", User, "user"),
    ("new_member_email_template_id", EmailTemplate, "e-mail template"),
)


async def apply_settings(session: AsyncSession, group: Group, values: Mapping[str, Any]) -> None:
    """Set the form's settings named in ``values`` (structure settings are left to
    ``groups.structure``), or raise with every problem found."""
    unknown = set(values) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown group settings: {sorted(unknown)}")
    problems = Problems()
    for setting, value in values.items():
        field = [setting]
        if setting in STRUCTURE:
            continue
        if setting in BOOLEAN_SETTINGS:
            if value is None:
                problems.add(
                    field, ErrorCode.REQUIRED, f"{field_label(field)} is true or false, not null."
                )
            else:
                setattr(group, setting, bool(value))
        elif setting == "name":
            group.name = clean_text(
                problems, field, value, max_length=MAX_NAME_LENGTH, required=True, name=True
            )  # type: ignore[assignment]
        elif setting == "description":
            group.description = clean_text(
                problems, field, value, max_length=MAX_DESCRIPTION_LENGTH
            )
        elif setting == "neighbourhood_role":
            roles = rules_of(session).roles
            if value is not None and value not in roles:
                known = ", ".join(sorted(roles)) or "none are registered"
                problems.add(
                    field, ErrorCode.UNKNOWN_ROLE, f"{value!r} is not a role (known: {known})."
                )
            else:
                group.neighbourhood_role = value
        else:
            setattr(group, setting, value)
    await _check_references(session, values, problems)
    _check_consistency(group, problems)
    if group.name and "name" in values:
        await _check_name_free(session, group, problems)
    problems.raise_if_any()


async def _check_references(
    session: AsyncSession, values: Mapping[str, Any], problems: Problems
) -> None:
    for setting, model, noun in REFERENCES:
        wanted = values.get(setting)
        if wanted is not None and await missing_ids(session, model, [wanted]):
            problems.add([setting], ErrorCode.NOT_FOUND, f"No {noun} with this id.")


def _check_consistency(group: Group, problems: Problems) -> None:
    if group.email_on_new_member and group.new_member_email_template_id is None:
        problems.add(
            ["new_member_email_template_id"],
            ErrorCode.TEMPLATE_REQUIRED,
            "emailOnNewMember needs a newMemberEmailTemplateId: which e-mail should be sent?",
        )
    start: date | None = group.start_date
    end: date | None = group.end_date
    if start is not None and end is not None and end < start:
        problems.add(
            ["end_date"],
            ErrorCode.END_BEFORE_START,
            f"endDate {end.isoformat()} is before startDate {start.isoformat()}.",
        )


async def _check_name_free(session: AsyncSession, group: Group, problems: Problems) -> None:
    key = name_key(group.name)
    clash = select(Group.id).where(Group.name_key == key)
    if group.id is not None:
        clash = clash.where(Group.id != group.id)
    if await session.scalar(clash) is not None:
        problems.add(
            ["name"], ErrorCode.NAME_TAKEN, f"A group named {group.name!r} already exists."
        )
    group.name_key = key
