"""What plugins add to the domain's rules, carried by every session of an application.

An application's sessions hold its ``Rules`` in ``session.info``, so the services, which
know nothing of plugins or GraphQL, apply the same roles, filter fields, change checks and
merge fields on every path (GraphQL, the CLI, imports). Sessions made without an app get
core rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.groups.changes import Change
from graphql_api.groups.filters import CONTACT_FIELDS, FilterField
from graphql_api.roles.registry import RoleDefinition

if TYPE_CHECKING:
    from graphql_api.email_templates.merging import MergeField

ChangeHook = Callable[[AsyncSession, Change], Awaitable[None]]


@dataclass(frozen=True)
class Rules:
    roles: Mapping[str, RoleDefinition] = field(default_factory=dict)
    filter_fields: Mapping[str, FilterField] = field(default_factory=lambda: dict(CONTACT_FIELDS))
    on_change: ChangeHook | None = None
    """Checks a change and lets plugins take part in it; raises ``UserInputError`` to refuse."""
    merge_fields: Mapping[str, MergeField] = field(default_factory=dict)
    """The ``contact.*`` merge fields plugins add to e-mail templates."""

    async def changed(self, session: AsyncSession, change: Change) -> None:
        if self.on_change is not None:
            await self.on_change(session, change)


CORE_RULES = Rules()


def rules_of(session: AsyncSession) -> Rules:
    return session.info.get("rules", CORE_RULES)
