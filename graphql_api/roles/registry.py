"""Neighbourhood roles ("Rol in buurtaanpak"): registered by plugins, chosen per group."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from graphql_api.kernel.labels import localized


@dataclass(frozen=True)
class RoleDefinition:
    """A role a group can give its members, e.g. ``coach`` ("Is coach")."""

    key: str
    labels: Mapping[str, str] = field(default_factory=dict)
    """Label per locale, at least ``nl``."""
    description: str | None = None

    def __post_init__(self) -> None:
        # Read-only like the rest: plugins get the same definition the app uses.
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    def label(self, locale: str | None) -> str:
        return localized(self.labels, locale, self.key)
