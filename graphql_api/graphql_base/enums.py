"""Domain enums as GraphQL enums, each value described where the enum is exposed."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

import strawberry

E = TypeVar("E", bound=enum.Enum)


def described_enum(
    domain: type[E], description: str, values: Mapping[E, str], name: str | None = None
) -> type[E]:
    """``domain`` as a GraphQL enum (named ``name``, else like ``domain``), with ``values``
    as the descriptions of its values. A value left out stops the import, so none reaches
    the schema undescribed."""
    missing = [member.name for member in domain if member not in values]
    if missing:
        raise TypeError(f"{domain.__name__} values without a description: {missing}")
    exposed = strawberry.enum(domain, name=name or domain.__name__, description=description)
    for value in exposed.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = values[domain[value.name]]
    return exposed
