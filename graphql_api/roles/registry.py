"""Neighbourhood roles ("Rol in buurtaanpak"): registered by plugins, chosen per group."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RoleDefinition:
    """A role a group can give its members, e.g. ``coach`` ("Is coach")."""

    key: str
    labels: dict[str, str] = field(default_factory=dict)
    """Label per locale, at least ``nl``."""
    description: str | None = None

    def label(self, locale: str) -> str:
        return self.labels.get(locale) or self.labels.get("nl") or self.key
