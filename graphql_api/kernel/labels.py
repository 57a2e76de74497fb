"""Labels people read, per locale: the CRM speaks Dutch, English is the other choice."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_LOCALE = "nl"


def localized(labels: Mapping[str, str], locale: str | None, fallback: str) -> str:
    """The label in ``locale``, else the Dutch one, else ``fallback`` (a key or a name)."""
    return labels.get(locale or DEFAULT_LOCALE) or labels.get(DEFAULT_LOCALE) or fallback
