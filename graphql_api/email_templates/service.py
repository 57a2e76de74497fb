"""Creating, changing, deleting and listing e-mail templates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.email_templates.merging import check_template
from graphql_api.email_templates.models import EmailTemplate
from graphql_api.email_templates.rendering import TemplateTooCostly
from graphql_api.groups.models import Group
from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.errors import ErrorCode, Problems, UserInputError
from graphql_api.kernel.validation import clean_text, name_key

MAX_BODY_LENGTH = 100_000
LIMITS = {"name": 200, "subject": 500, "body": MAX_BODY_LENGTH}


@requires("templates.manage")
async def create_email_template(
    session: AsyncSession, actor: Principal, values: Mapping[str, Any]
) -> EmailTemplate:
    """Store a template; its name is unique (case-insensitively, trimmed), and its subject
    and body must render in the sandbox with the merge fields."""
    template = EmailTemplate()
    await _apply(session, template, {field: values.get(field) for field in LIMITS})
    session.add(template)
    await session.flush()
    return template


@requires("templates.manage")
async def update_email_template(
    session: AsyncSession, actor: Principal, template_id: int, changes: Mapping[str, Any]
) -> EmailTemplate:
    """Change the given fields of a template; absent ones stay."""
    template = await _get(session, template_id)
    await _apply(session, template, changes)
    template.updated_at = utcnow()
    await session.flush()
    return template


@requires("templates.manage")
async def delete_email_template(session: AsyncSession, actor: Principal, template_id: int) -> None:
    """Delete a template no group sends."""
    template = await _get(session, template_id)
    users = list(
        await session.scalars(
            select(Group.name)
            .where(Group.new_member_email_template_id == template_id)
            .order_by(Group.name_key)
        )
    )
    if users:
        raise UserInputError.single(
            ["template_id"],
            ErrorCode.TEMPLATE_IN_USE,
            f"{template.name!r} is sent by {', '.join(map(repr, users))}; "
            "choose another template there first.",
        )
    await session.execute(delete(EmailTemplate).where(EmailTemplate.id == template_id))


async def _get(session: AsyncSession, template_id: int) -> EmailTemplate:
    template = await session.get(EmailTemplate, template_id, with_for_update=True)
    if template is None:
        raise UserInputError.single(
            ["template_id"], ErrorCode.NOT_FOUND, "No e-mail template with this id."
        )
    return template


async def _apply(session: AsyncSession, template: EmailTemplate, values: Mapping[str, Any]) -> None:
    problems = Problems()
    for field, value in values.items():
        text = clean_text(
            problems,
            [field],
            value,
            max_length=LIMITS[field],
            required=True,
            name=field == "name",
        )
        if text is None:
            continue
        if field != "name" and (problem := await check_template(session, text)) is not None:
            code = (
                ErrorCode.TEMPLATE_TOO_COSTLY
                if isinstance(problem, TemplateTooCostly)
                else ErrorCode.INVALID
            )
            problems.add([field], code, f"The {field} cannot be rendered: {problem}.")
            continue
        setattr(template, field, text)
    problems.raise_if_any()
    if "name" in values:
        key = name_key(template.name)
        clash = select(EmailTemplate.id).where(EmailTemplate.name_key == key)
        if template.id is not None:
            clash = clash.where(EmailTemplate.id != template.id)
        if await session.scalar(clash) is not None:
            raise UserInputError.single(
                ["name"],
                ErrorCode.NAME_TAKEN,
                f"An e-mail template named {template.name!r} already exists.",
            )
        template.name_key = key


async def list_email_templates(session: AsyncSession) -> list[EmailTemplate]:
    return list(await session.scalars(select(EmailTemplate).order_by(EmailTemplate.name_key)))
