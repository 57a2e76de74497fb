"""Creating and listing e-mail templates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.email_templates.models import EmailTemplate
from graphql_api.errors import ErrorCode, Problems, UserInputError
from graphql_api.validation import clean_text, name_key

MAX_BODY_LENGTH = 100_000


async def create_email_template(session: AsyncSession, values: Mapping[str, Any]) -> EmailTemplate:
    """Store a template; its name is unique, case-insensitively and trimmed."""
    problems = Problems()
    name = clean_text(problems, ["name"], values.get("name"), max_length=200, required=True)
    subject = clean_text(
        problems, ["subject"], values.get("subject"), max_length=500, required=True
    )
    body = clean_text(
        problems, ["body"], values.get("body"), max_length=MAX_BODY_LENGTH, required=True
    )
    problems.raise_if_any()
    assert name is not None and subject is not None and body is not None
    key = name_key(name)
    if await session.scalar(select(EmailTemplate.id).where(EmailTemplate.name_key == key)):
        raise UserInputError.single(
            ["name"], ErrorCode.NAME_TAKEN, f"An e-mail template named {name!r} already exists."
        )
    template = EmailTemplate(name=name, name_key=key, subject=subject, body=body)
    session.add(template)
    await session.flush()
    return template


async def list_email_templates(session: AsyncSession) -> list[EmailTemplate]:
    return list(await session.scalars(select(EmailTemplate).order_by(EmailTemplate.name_key)))
