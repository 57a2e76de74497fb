"""What plugins add to the schema, as the plugin manager collects it and the schema
builder takes it: neither needs the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.utils.str_converters import to_camel_case

SCHEMA_TARGETS = ("query", "mutation", "group", "contact")
"""The core types plugins may add fields to (hooks ``<target>_fields``)."""


class PluginConflict(RuntimeError):
    """Two plugins, or a plugin and the core, contribute the same name; the service
    cannot start."""


@dataclass
class SchemaContributions:
    """The GraphQL types and fields plugins add, per target type, with each plugin's name."""

    types: list[tuple[str, type]] = field(default_factory=list)
    fields: dict[str, list[tuple[str, Any]]] = field(
        default_factory=lambda: {t: [] for t in SCHEMA_TARGETS}
    )
    error_codes: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Error code -> (plugin, description): the plugins' own codes."""


def error_code_prefix(plugin: str) -> str:
    """What every error code of a plugin starts with: ``email_notifications`` ->
    ``EMAIL_NOTIFICATIONS_``."""
    return "".join(c if c.isalnum() else "_" for c in plugin).upper() + "_"


def graphql_name(schema_field: Any) -> str:
    """The GraphQL name a contributed field will have."""
    if schema_field.graphql_name:
        return str(schema_field.graphql_name)
    python_name = schema_field.python_name or schema_field.base_resolver.name
    return to_camel_case(python_name)
