"""What plugins contribute: roles, permissions, filter fields, their own settings, schema
types, fields and error codes, and migrations. Each is gathered once while the app is
built, and a name two plugins (or a plugin and the core) claim stops the service. The
schema builder takes the schema part as ``SchemaContributions``, needing nothing else
from here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from strawberry.types.field import StrawberryField
from strawberry.utils.str_converters import to_camel_case

from graphql_api.email_templates.merging import CONTACT_MERGE_FIELDS, MergeField
from graphql_api.groups.filters import CONTACT_FIELDS, FilterField
from graphql_api.jobs.kinds import JobKind
from graphql_api.jobs.schedules import ScheduledJob
from graphql_api.kernel.access import CORE_PERMISSIONS
from graphql_api.kernel.errors import ErrorCode
from graphql_api.plugin_host.discovery import Registered, drop, results
from graphql_api.roles.registry import RoleDefinition

SCHEMA_TARGETS = ("query", "mutation", "group", "contact")
"""The core types plugins may add fields to (hooks ``<target>_fields``)."""

CoreFieldNames = Mapping[str, frozenset[str]]
"""GraphQL names of the core's fields on each target type, which plugins may not reuse."""


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


def roles(registered: Registered) -> dict[str, RoleDefinition]:
    """The neighbourhood roles plugins define, by key; a key has one owner."""
    found: dict[str, RoleDefinition] = {}
    owners: dict[str, str] = {}
    for plugin, definitions in results(registered, "register_roles", RoleDefinition):
        for role in definitions:
            _claim(owners, role.key, plugin, "role")
            found[role.key] = role
    return found


def permissions(registered: Registered) -> dict[str, str]:
    """The core's permissions and those plugins add, each with its description."""
    found = dict(CORE_PERMISSIONS)
    for _, contributed in results(registered, "register_permissions", check=_check_permissions):
        found.update(contributed)
    return found


def filter_fields(
    registered: Registered, roles: Mapping[str, RoleDefinition]
) -> dict[str, FilterField]:
    """The contact fields a group filter may test: the core's and those plugins add, which
    may depend on the ``roles`` defined."""
    fields = dict(CONTACT_FIELDS)
    owners = dict.fromkeys(CONTACT_FIELDS, "core")
    for plugin, contributed in results(registered, "filter_fields", FilterField, roles=roles):
        for filter_field in contributed:
            _claim(owners, filter_field.name, plugin, "filter field")
            fields[filter_field.name] = filter_field
    return fields


def schema(registered: Registered, core_fields: CoreFieldNames) -> SchemaContributions:
    """The types, fields and error codes plugins add to the schema; none may reuse a name
    of the core's (``core_fields``) or another plugin's."""
    contributions = SchemaContributions()
    type_owners: dict[str, str] = {}
    for plugin, types in results(registered, "graphql_types", type):
        for graphql_type in types:
            _claim(type_owners, _type_name(graphql_type), plugin, "type")
            contributions.types.append((plugin, graphql_type))
    for target in SCHEMA_TARGETS:
        owners = dict.fromkeys(core_fields[target], "core")
        for plugin, fields in results(registered, f"{target}_fields", StrawberryField):
            for schema_field in fields:
                _claim(owners, graphql_name(schema_field), plugin, f"{target} field")
                contributions.fields[target].append((plugin, schema_field))
    code_owners = dict.fromkeys(ErrorCode, "core")
    for plugin, codes in results(registered, "error_codes", check=_check_codes):
        for code, description in codes.items():
            _claim(code_owners, code, plugin, "error code")
            contributions.error_codes[code] = (plugin, description)
    return contributions


def plugin_settings(registered: Registered) -> dict[str, Any]:
    """Each plugin's settings, read from the environment once."""
    found = {}
    for plugin, settings_class in results(registered, "plugin_settings", None):
        try:
            found[plugin] = settings_class()
        except Exception as error:
            drop(registered, plugin, error)
    return found


def job_kinds(registered: Registered) -> dict[str, JobKind]:
    """The plugins' own kinds of job, each named ``<plugin>.<name>``."""
    found: dict[str, JobKind] = {}
    for _, kinds in results(registered, "job_kinds", check=_check_job_kinds):
        found.update(kinds)
    return found


def scheduled_jobs(registered: Registered) -> list[ScheduledJob]:
    """The jobs plugins start every so often, each of a kind of the plugin's own."""
    found = []
    for _, schedules in results(registered, "scheduled_jobs", check=_check_schedules):
        found.extend(schedules)
    return found


def http_routes(registered: Registered) -> dict[str, list[Any]]:
    """Each plugin's Starlette routes, to be answered under ``/plugins/<plugin>``."""
    return dict(results(registered, "http_routes", check=_check_routes))


def merge_fields(registered: Registered) -> dict[str, MergeField]:
    """The merge fields plugins add to ``contact``, by name; none may reuse a core field's
    name or another plugin's."""
    owners = dict.fromkeys(CONTACT_MERGE_FIELDS, "core")
    found: dict[str, MergeField] = {}
    for plugin, contributed in results(registered, "merge_fields", MergeField):
        for merge_field in contributed:
            _claim(owners, merge_field.name, plugin, "merge field")
            found[merge_field.name] = merge_field
    return found


def migrations(registered: Registered) -> dict[str, str]:
    """Each plugin's folder of Alembic revisions (kept in a version table of its own)."""
    return dict(results(registered, "migrations", None))


def _claim(owners: dict[str, str], name: str, plugin: str, what: str) -> None:
    if name in owners:
        raise PluginConflict(
            f"{what} {name!r} is contributed by both {owners[name]!r} and {plugin!r}"
        )
    owners[name] = plugin


def _type_name(graphql_type: type) -> str:
    definition = getattr(graphql_type, "__strawberry_definition__", None)
    if definition is None:
        raise TypeError(f"{graphql_type!r} is not a Strawberry type")
    return str(definition.name)


def _check_codes(plugin: str, codes: Any) -> None:
    """Error codes are a dict of code -> description, each code with the plugin's prefix."""
    prefix = error_code_prefix(plugin)
    if not isinstance(codes, dict) or not all(
        isinstance(code, str) and isinstance(text, str) for code, text in codes.items()
    ):
        raise TypeError("hook 'error_codes' must return a dict of code -> description")
    wrong = sorted(code for code in codes if not code.startswith(prefix) or not code.isupper())
    if wrong:
        raise ValueError(f"error codes {wrong} must be capitals starting with {prefix!r}")


def _check_permissions(plugin: str, permissions: Any) -> None:
    """Permissions are a dict of name -> description, each name ``<plugin>.<action>``."""
    _check_own_names(plugin, permissions, "register_permissions", "permissions", str, "an action")


def _check_job_kinds(plugin: str, kinds: Any) -> None:
    """Job kinds are a dict of ``<plugin>.<name>`` -> ``JobKind``."""
    _check_own_names(plugin, kinds, "job_kinds", "job kinds", JobKind, "a name")


def _check_own_names(
    plugin: str, found: Any, hook: str, what: str, value_type: type, tail: str
) -> None:
    """``found`` is a dict of names -> ``value_type``, every name ``<plugin>.`` and more:
    a plugin names only what is its own."""
    if not isinstance(found, dict) or not all(
        isinstance(name, str) and isinstance(value, value_type) for name, value in found.items()
    ):
        described = "description" if value_type is str else value_type.__name__
        raise TypeError(f"hook {hook!r} must return a dict of name -> {described}")
    prefix = f"{plugin}."
    wrong = sorted(name for name in found if not name.startswith(prefix) or name == prefix)
    if wrong:
        raise ValueError(f"{what} {wrong} must be named {prefix!r} and {tail}")


def _check_schedules(plugin: str, schedules: Any) -> None:
    """Scheduled jobs are a list of ``ScheduledJob`` of the plugin's own kinds."""
    if not isinstance(schedules, list) or not all(isinstance(s, ScheduledJob) for s in schedules):
        raise TypeError("hook 'scheduled_jobs' must return a list of ScheduledJob")
    foreign = sorted(s.kind for s in schedules if not s.kind.startswith(f"{plugin}."))
    if foreign:
        raise ValueError(f"scheduled jobs {foreign} are not of the plugin's own job kinds")


def _check_routes(plugin: str, routes: Any) -> None:
    """Routes are a list of Starlette routes (anything with ``matches``), each with a path."""
    if not isinstance(routes, list) or not all(
        callable(getattr(route, "matches", None))
        and str(getattr(route, "path", "")).startswith("/")
        for route in routes
    ):
        raise TypeError("hook 'http_routes' must return a list of Starlette routes with paths")
