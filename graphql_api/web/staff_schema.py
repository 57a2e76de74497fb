"""The composition root of the staff schema: every feature's queries and mutations, the
plugins' contributions, and the request limits. Nothing below this module imports it."""

from __future__ import annotations

import copy
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import strawberry
from strawberry.exceptions import DuplicatedTypeName
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionResult
from strawberry.types.enum import EnumValue

from graphql_api.contacts.api.imports import ImportMutations, ImportQueries
from graphql_api.contacts.api.mutations import ContactMutations
from graphql_api.contacts.api.queries import ContactQueries
from graphql_api.contacts.api.types import Contact
from graphql_api.email_templates.api.mutations import EmailTemplateMutations
from graphql_api.email_templates.api.queries import EmailTemplateQueries
from graphql_api.email_templates.api.types import EmailTemplate
from graphql_api.graphql_base.cost import QueryCostLimiter
from graphql_api.graphql_base.errors import (
    SERVICE_UNAVAILABLE,
    TIMEOUT,
    CodedSchema,
    ErrorCodeType,
    MaskInternalErrors,
    limit_rule,
    never_executed,
)
from graphql_api.graphql_base.nodes import findables, node_queries
from graphql_api.graphql_base.operation_name import OperationNameRequired
from graphql_api.graphql_base.text_inputs import CleanStringLiterals, CleanVariables
from graphql_api.groups.api.exports import ExportMutations
from graphql_api.groups.api.mutations import GroupMutations
from graphql_api.groups.api.queries import GroupQueries
from graphql_api.groups.api.subscriptions import GroupSubscriptions
from graphql_api.groups.api.types import Group, MembershipEvent
from graphql_api.jobs.api.mutations import JobMutations
from graphql_api.jobs.api.queries import JobQueries
from graphql_api.jobs.api.subscriptions import JobSubscriptions
from graphql_api.jobs.api.types import Job
from graphql_api.kernel.db import is_timeout, is_unavailable
from graphql_api.kernel.requests import current_request
from graphql_api.notifications.api.mutations import NotificationMutations
from graphql_api.notifications.api.queries import NotificationQueries
from graphql_api.notifications.api.types import NotificationDelivery
from graphql_api.plugin_host.api.queries import PluginQueries
from graphql_api.plugin_host.contributions import PluginConflict, SchemaContributions, graphql_name
from graphql_api.portal.api.staff import StaffPortalMutations
from graphql_api.roles.api.queries import RoleQueries
from graphql_api.settings import Settings
from graphql_api.users.api.mutations import UserMutations
from graphql_api.users.api.queries import UserQueries
from graphql_api.users.api.types import ApiToken, AuditEntry, StaffRole, User

NODE_TYPES = (
    Group,
    Contact,
    User,
    EmailTemplate,
    MembershipEvent,
    StaffRole,
    AuditEntry,
    NotificationDelivery,
    ApiToken,
    Job,
)
"""Every core type implementing ``Node``, each declaring how it is found (a test keeps the
list complete)."""
NODES = findables(NODE_TYPES)
NodeQueries = node_queries(NODE_TYPES)


@strawberry.type(description="Everything that can be read.")
class Query(
    GroupQueries,
    ContactQueries,
    UserQueries,
    EmailTemplateQueries,
    RoleQueries,
    PluginQueries,
    NotificationQueries,
    JobQueries,
    ImportQueries,
    NodeQueries,
):
    pass


@strawberry.type(description="Every change; each mutation is one transaction.")
class Mutation(
    GroupMutations,
    ContactMutations,
    EmailTemplateMutations,
    NotificationMutations,
    UserMutations,
    StaffPortalMutations,
    JobMutations,
    ExportMutations,
    ImportMutations,
):
    pass


@strawberry.type(
    description="Changes as they commit, over WebSocket (graphql-transport-ws); each message "
    "of a group's changes carries an eventId to resume from, and jobChanged sends the job."
)
class Subscription(GroupSubscriptions, JobSubscriptions):
    pass


class OperationBoundary(SchemaExtension):
    """After each operation: end its read transaction and forget what its loaders hold.

    An HTTP request is one operation; a WebSocket connection runs many on one context,
    and each must see what was committed since the one before."""

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        await context.db.release()
        context.forget_loaded()


class RecordOperation(SchemaExtension):
    """Tell the request's record (for its log line and the metrics) which operation ran
    and how it ended. A document that does not parse leaves it untold."""

    def on_operation(self) -> Iterator[None]:
        yield
        record = current_request()
        result = self.execution_context.result
        if record is None or result is None:
            return
        record.operation = self.execution_context.operation_name or "anonymous"
        record.outcome = _outcome(result)


def _outcome(result: ExecutionResult) -> str:
    """How a request ended, for its log line and the metrics: a timeout or an outage by
    its name, whichever field met it, so they are never counted as ordinary errors."""
    if never_executed(result):
        return "invalid"
    for error in result.errors or []:
        original: Any = error.original_error
        if error.extensions.get("code") == TIMEOUT or is_timeout(original):
            return "timeout"
        if error.extensions.get("code") == SERVICE_UNAVAILABLE or is_unavailable(original):
            return "unavailable"
    return "errors" if result.errors else "ok"


_BUILD_LOCK = threading.Lock()

CORE_FIELD_NAMES = {
    target: frozenset(graphql_name(f) for f in root.__strawberry_definition__.fields)
    for target, root in (
        ("query", Query),
        ("mutation", Mutation),
        ("group", Group),
        ("contact", Contact),
    )
}
"""Taken before any plugin field joins a core type, so no build can see another's."""


def build_schema(
    settings: Settings, contributions: SchemaContributions | None = None
) -> strawberry.Schema:
    """The schema of one application: the core, every plugin's types and fields, and the
    limits on query depth, aliases, tokens and cost from ``settings``."""
    # The rules are made once: the validation cache is keyed by them, so rules made
    # afresh for every request would make every request miss it.
    limits = [
        limit_rule(rule)
        for rule in (
            *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
            *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
        )
    ]
    contributions = contributions or SchemaContributions()
    fields = contributions.fields
    query = _extended(Query, fields["query"])
    mutation = _extended(Mutation, fields["mutation"])
    # Group and Contact are shared by every application, and referenced by core fields,
    # so they cannot be subclassed: plugin fields join them only while this schema is
    # converted, which copies them into this schema alone.
    with (
        _BUILD_LOCK,
        _joined(Group, fields["group"]),
        _joined(Contact, fields["contact"]),
        _joined_codes(contributions.error_codes),
        _named_clashes(contributions),
    ):
        return CodedSchema(
            query=query,
            mutation=mutation,
            subscription=Subscription,
            types=[graphql_type for _, graphql_type in contributions.types],
            config=StrawberryConfig(auto_camel_case=True),
            max_tokens=settings.max_tokens,
            extensions=[
                lambda: AddValidationRules([*limits, CleanStringLiterals]),
                CleanVariables,
                OperationNameRequired,
                lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
                lambda: QueryCostLimiter(settings),
                MaskInternalErrors,
                OperationBoundary,
                RecordOperation,
                # Clients send the same documents again and again; parse and check each once.
                lambda: ParserCache(maxsize=1000),
                lambda: ValidationCache(maxsize=1000),
            ],
        )


def _extended(base: type, contributed: list[tuple[str, Any]]) -> type:
    """A subclass of a root type with the plugins' fields, for one application."""
    if not contributed:
        return base
    namespace = {_python_name(f): f for _, f in contributed}
    definition = base.__strawberry_definition__  # type: ignore[attr-defined]
    return strawberry.type(
        type(base.__name__, (base,), namespace),
        name=definition.name,
        description=definition.description,
    )


@contextmanager
def _joined(target: type, contributed: list[tuple[str, Any]]) -> Iterator[None]:
    definition = target.__strawberry_definition__  # type: ignore[attr-defined]
    added = []
    for _, schema_field in contributed:
        schema_field = copy.copy(schema_field)
        schema_field.python_name = _python_name(schema_field)
        schema_field.origin = target
        added.append(schema_field)
    definition.fields.extend(added)
    try:
        yield
    finally:
        for schema_field in added:
            definition.fields.remove(schema_field)


@contextmanager
def _joined_codes(codes: dict[str, tuple[str, str]]) -> Iterator[None]:
    """The plugins' error codes join ``ErrorCode`` while this schema is converted, so they
    are in this application's enum alone."""
    definition = ErrorCodeType.__strawberry_definition__  # type: ignore[attr-defined]
    added = [
        EnumValue(name=code, value=code, description=f"{description} (plugin {plugin})")
        for code, (plugin, description) in sorted(codes.items())
    ]
    definition.values.extend(added)
    try:
        yield
    finally:
        for value in added:
            definition.values.remove(value)


@contextmanager
def _named_clashes(contributions: SchemaContributions) -> Iterator[None]:
    """A plugin type named like a core type stops startup naming the plugin."""
    try:
        yield
    except DuplicatedTypeName as error:
        owners = [p for p, t in contributions.types if t.__name__ in str(error)]
        raise PluginConflict(f"{error} (core and plugin {', '.join(owners) or '?'})") from error


def _python_name(schema_field: Any) -> str:
    # Resolvers made by one factory share a function name; the GraphQL name is unique.
    return graphql_name(schema_field)
