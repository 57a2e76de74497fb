"""What a query costs, computed from its document and variables before anything runs: one
over ``GRAPHQL_API_MAX_QUERY_COST`` is refused with ``LIMIT_EXCEEDED`` before a single SQL
statement (docs/reliability.md, "Query cost").

The cost of the selections of an operation, run ``n`` times (1 at the root)::

    cost(selections, n) = sum over each field f that runs:
                          n * price(f) + cost(f's selections, n * size(f))

- ``price``: 0 for a scalar or enum, 1 for a field that loads objects, ``MEMBERSHIP_PRICE``
  for a field reading derived membership; a field's ``metadata`` may set another
  (``priced``);
- ``size``: how many objects a list field may return. A connection field (one with a
  ``first`` argument) returns one page: ``first``, or ``GRAPHQL_API_DEFAULT_PAGE_SIZE``
  when absent, is the size of its ``edges`` and ``nodes``. Any other list may hold up to
  ``GRAPHQL_API_MAX_PAGE_SIZE``. An object is 1.

Fields are collected as execution collects them: fragments and inline fragments whose
type applies, ``@skip`` and ``@include`` obeyed, each alias on its own; for an interface
or union the costliest of its types counts. Introspection (``__schema``, ``__typename``)
reads no data and is free.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLIncludeDirective,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSkipDirective,
    InlineFragmentNode,
    NamedTypeNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.execution import VariableValues, get_argument_values, get_variable_values
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_api.graphql_base.errors import LIMIT_EXCEEDED, PublicError
from graphql_api.settings import Settings

PRICE = "cost.price"
"""Key of a field's price in its ``strawberry.field(metadata=...)``."""
PAGE = "cost.page"
"""Key marking a connection's ``edges`` and ``nodes``: as long as the page asked for."""

MEMBERSHIP_PRICE = 10
"""The price of a field that reads derived membership (members, counts, a contact's
groups): a query of its own per object, or a share of a batched one over memberships."""


def priced(price: int) -> dict[str, Any]:
    """``metadata`` for a field of this price per object it runs for."""
    return {PRICE: price}


READS_MEMBERSHIP = priced(MEMBERSHIP_PRICE)
"""``metadata`` of a field that reads derived membership."""
LOADED_WITH_PARENT = priced(0)
"""``metadata`` of an object field its parent's row holds already (a page's ``pageInfo``)."""
PAGE_OF_CONNECTION = {PRICE: 0, PAGE: True}
"""``metadata`` of a connection's ``edges`` and ``nodes``: the page its field loaded."""
DEFINITION = "strawberry-definition"
"""Where Strawberry keeps a GraphQL field's own definition (and so its metadata)."""


def query_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    settings: Settings,
) -> int | None:
    """The cost of the operation the request runs, with the page sizes of ``settings``;
    None when execution will refuse it anyway (no such operation, variables that do not
    fit)."""
    operation = get_operation_ast(document, operation_name)
    root = schema.get_root_type(operation.operation) if operation else None
    if operation is None or root is None:
        return None
    definitions = operation.variable_definitions or ()
    coerced = get_variable_values(schema, definitions, dict(variables or {}))
    if not isinstance(coerced, VariableValues):
        return None
    walk = _Walk(schema, document, coerced, settings)
    return walk.cost(walk.collect([operation.selection_set], root), root, times=1, page=None)


class _Walk:
    """One pricing of one operation."""

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, variables: Any, settings: Settings
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.default_page_size = settings.default_page_size
        self.max_page_size = settings.max_page_size
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def cost(
        self,
        fields: dict[str, list[FieldNode]],
        parent: GraphQLObjectType,
        *,
        times: int,
        page: int | None,
    ) -> int:
        """``cost(selections, times)`` of the collected ``fields``; ``page``: the page
        size of the connection they belong to, if they do."""
        total = 0
        for nodes in fields.values():
            field = parent.fields.get(nodes[0].name.value)
            if field is None:  # introspection, which reads no data
                continue
            metadata = getattr(field.extensions.get(DEFINITION), "metadata", None) or {}
            named = get_named_type(field.type)
            leaf = is_leaf_type(named)
            total += times * metadata.get(PRICE, 0 if leaf else 1)
            if leaf:
                continue
            size, inner_page = self._sizes(field, nodes[0], metadata, page)
            total += max(
                (
                    self.cost(
                        self.collect(_selections(nodes), object_type),
                        object_type,
                        times=times * size,
                        page=inner_page,
                    )
                    for object_type in self._object_types(named)
                ),
                default=0,
            )
        return total

    def _sizes(
        self, field: GraphQLField, node: FieldNode, metadata: Mapping[str, Any], page: int | None
    ) -> tuple[int, int | None]:
        """How many objects ``field`` returns, and the page size its children share."""
        if "first" in field.args:
            first = self._arguments(field, node).get("first")
            if not isinstance(first, int):
                return 1, self.default_page_size
            return 1, min(max(first, 0), self.max_page_size)
        if metadata.get(PAGE) and page is not None:
            return page, None
        if is_list_type(get_nullable_type(field.type)):
            return self.max_page_size, None
        return 1, None

    def _arguments(self, field: GraphQLField, node: FieldNode) -> dict[str, Any]:
        try:
            return get_argument_values(field, node, self.variables)
        except GraphQLError:  # execution refuses it before anything is read
            return {}

    def _object_types(self, named: GraphQLNamedType) -> list[GraphQLObjectType]:
        if is_abstract_type(named):
            return list(self.schema.get_possible_types(named))  # type: ignore[arg-type]
        return [named] if isinstance(named, GraphQLObjectType) else []

    def collect(
        self, selection_sets: list[SelectionSetNode], runtime: GraphQLObjectType
    ) -> dict[str, list[FieldNode]]:
        """The fields of ``selection_sets`` that run on a ``runtime`` object, by response
        key (an alias or the name), each fragment spread once, as execution merges them."""
        fields: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for selection_set in selection_sets:
            self._collect_into(selection_set, runtime, fields, visited)
        return fields

    def _collect_into(
        self,
        selection_set: SelectionSetNode,
        runtime: GraphQLObjectType,
        fields: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = (selection.alias or selection.name).value
                fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if self._applies(selection.type_condition, runtime):
                    self._collect_into(selection.selection_set, runtime, fields, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if name in visited or fragment is None:
                    continue
                visited.add(name)
                if self._applies(fragment.type_condition, runtime):
                    self._collect_into(fragment.selection_set, runtime, fields, visited)

    def _included(self, selection: Any) -> bool:
        for directive, keep in ((GraphQLSkipDirective, False), (GraphQLIncludeDirective, True)):
            node = next(
                (d for d in selection.directives or () if d.name.value == directive.name), None
            )
            if node is not None:
                try:
                    if get_argument_values(directive, node, self.variables)["if"] is not keep:
                        return False
                except GraphQLError:
                    return True
        return True

    def _applies(self, condition: NamedTypeNode | None, runtime: GraphQLObjectType) -> bool:
        if condition is None:
            return True
        named = self.schema.get_type(condition.name.value)
        if named is None:
            return False
        if is_abstract_type(named):
            return self.schema.is_sub_type(named, runtime)  # type: ignore[arg-type]
        return named is runtime


def _selections(nodes: list[FieldNode]) -> list[SelectionSetNode]:
    return [node.selection_set for node in nodes if node.selection_set is not None]


class QueryCostLimiter(SchemaExtension):
    """Refuse an operation that costs more than ``GRAPHQL_API_MAX_QUERY_COST`` before it
    executes: its answer is one ``LIMIT_EXCEEDED`` error naming the cost and the limit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None
        cost = query_cost(
            context.schema._schema,
            context.graphql_document,
            context.operation_name,
            context.variables,
            self.settings,
        )
        limit = self.settings.max_query_cost
        if cost is not None and cost > limit:
            error = too_costly(cost, limit)
            if context.operation_type is OperationType.SUBSCRIPTION:
                raise error  # a subscription has no result to set; Strawberry sends this
            # A result set before execution is the answer; nothing runs.
            context.result = GraphQLExecutionResult(data=None, errors=[error])
        yield


def too_costly(cost: int, limit: int) -> PublicError:
    """The refusal of a query costing ``cost``, over ``limit``, with both in extensions."""
    error = PublicError(
        f"This query costs {cost:,}, over the limit of {limit:,} "
        "(GRAPHQL_API_MAX_QUERY_COST): ask for smaller pages (first) or fewer nested lists.",
        code=LIMIT_EXCEEDED,
    )
    error.extensions.update(cost=cost, maxCost=limit)
    return error
