"""Planning: a query document, checked once by the resolvers' run, made into a ``Plan``;
anything without a compiled form leaves the document to the resolvers."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.utilities import get_operation_ast
from sqlalchemy import inspect
from sqlalchemy.orm import aliased
from strawberry.permission import PermissionExtension

from graphql_api.graphql_base.access import Needs
from graphql_api.graphql_base.compiled.forms import (
    COMPILED,
    ById,
    Children,
    FromColumns,
    NotCompiled,
    PageOf,
    PluginColumn,
    Reference,
    Spec,
    SqlValue,
)
from graphql_api.graphql_base.compiled.plans import (
    Constant,
    GlobalId,
    Joined,
    Leaf,
    Level,
    Load,
    Plan,
)
from graphql_api.graphql_base.cost import DEFINITION
from graphql_api.graphql_base.relay import GLOBAL_ID


class Planner:
    """Plans the operations of one schema."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema

    def plan(self, document: DocumentNode, operation_name: str | None) -> Plan:
        operation = get_operation_ast(document, operation_name)
        if operation is None or operation.operation is not OperationType.QUERY:
            raise NotCompiled("not one query")
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.fragments = fragments
        self.permissions: set[str] = set()
        self.priced_by_variables = False
        self.joins = 0
        self.values = 0
        root_type = self.schema.query_type
        assert root_type is not None
        roots: list[tuple[str, Any]] = []
        loads: list[tuple[Load, list[Load]]] = []
        for key, nodes in self._collect(root_type, [operation.selection_set]).items():
            name = nodes[0].name.value
            if name == "__typename":
                roots.append((key, Constant(root_type.name)))
                continue
            definition = root_type.fields.get(name)
            if definition is None:
                raise NotCompiled("introspection")
            spec = self._spec(definition)
            if not isinstance(spec, ById | PageOf):  # a root field has no parent row
                raise NotCompiled(f"root field {name} has no compiled form")
            load = self._load(spec, definition, nodes, under_many=False)
            below: list[Load] = []
            self._below(load, below)
            roots.append((key, load))
            loads.append((load, below))
        return Plan(
            operation,
            roots,
            loads,
            frozenset(self.permissions),
            document,
            operation_name,
            self.priced_by_variables,
        )

    def _below(self, load: Load, into: list[Load]) -> None:
        """The loads under ``load``, breadth first: each runs after the level above it."""
        assert load.level is not None
        children = [part for _, part in load.level.fields if isinstance(part, Load)]
        into.extend(children)
        for child in children:
            self._below(child, into)

    def _spec(self, definition: GraphQLField) -> Spec | None:
        strawberry_field = definition.extensions.get(DEFINITION)
        if strawberry_field is None:
            raise NotCompiled("a field Strawberry did not make")
        for extension in strawberry_field.extensions:
            if not isinstance(extension, PermissionExtension):
                raise NotCompiled("a field extension")
            for permission in extension.permissions:
                if not isinstance(permission, Needs):
                    raise NotCompiled("a permission class")
                self.permissions.add(permission.permission)
        if strawberry_field.permission_classes:
            raise NotCompiled("a permission class")
        return strawberry_field.metadata.get(COMPILED)

    def _load(
        self, spec: Spec, definition: GraphQLField, nodes: list[FieldNode], under_many: bool
    ) -> Load:
        """``under_many``: the level it is asked on may hold more than one row."""
        if isinstance(spec, PageOf) and under_many:
            raise NotCompiled("a page under a list: a statement per row")
        output = definition.type
        load = Load(spec, definition, nodes[0], non_null=is_non_null_type(output))
        named = get_named_type(output)
        if not is_object_type(named):
            raise NotCompiled("an abstract type")
        if isinstance(spec, PageOf):
            self.priced_by_variables |= any(
                isinstance(argument.value, VariableNode) for argument in nodes[0].arguments or ()
            )
            load.level = Level(spec.model)
            load.connection = self._connection(load, named, nodes)
        else:
            if is_list_type(get_nullable_type(output)) != isinstance(spec, Children):
                raise NotCompiled("a list where one row was expected, or the reverse")
            many = under_many or isinstance(spec, Children)
            load.level = self._level(spec.model, named, _sub(nodes), many=many)
            if isinstance(spec, Children):
                load.level.columns[spec.parent_key] = None
        return load

    def _connection(
        self, load: Load, connection: GraphQLObjectType, nodes: list[FieldNode]
    ) -> list[tuple[str, Any]]:
        assert load.level is not None and isinstance(load.spec, PageOf)
        parts: list[tuple[str, Any]] = []
        node_sets: list[SelectionSetNode] = []
        for key, field_nodes in self._collect(connection, _sub(nodes)).items():
            name = field_nodes[0].name.value
            if name == "__typename":
                parts.append((key, ("__typename", connection.name)))
            elif name == "edges":
                edge_type = get_named_type(connection.fields[name].type)
                edge: list[tuple[str, Any]] = []
                for edge_key, edge_nodes in self._collect(edge_type, _sub(field_nodes)).items():
                    edge_name = edge_nodes[0].name.value
                    if edge_name == "node":
                        node_sets.extend(_sub(edge_nodes))
                        edge.append((edge_key, "node"))
                    elif edge_name == "cursor":
                        edge.append((edge_key, "cursor"))
                    else:
                        edge.append((edge_key, ("__typename", edge_type.name)))
                parts.append((key, ("edges", edge)))
            elif name == "nodes":
                node_sets.extend(_sub(field_nodes))
                parts.append((key, ("nodes", None)))
            elif name == "pageInfo":
                info_type = get_named_type(connection.fields[name].type)
                names = [
                    (
                        info_key,
                        n[0].name.value
                        if n[0].name.value != "__typename"
                        else ("__typename", info_type.name),
                    )
                    for info_key, n in self._collect(info_type, _sub(field_nodes)).items()
                ]
                parts.append((key, ("pageInfo", names)))
            elif name == "totalCount":
                load.counted = True
                parts.append((key, ("totalCount", None)))
            else:
                raise NotCompiled(f"connection field {name}")
        node_type = get_named_type(connection.fields["edges"].type)
        node_type = get_named_type(node_type.fields["node"].type)  # type: ignore[attr-defined]
        load.level = self._level(load.spec.model, node_type, node_sets, many=True)
        return parts

    def _level(
        self,
        model: type,
        object_type: Any,
        selection_sets: list[SelectionSetNode],
        prefix: str = "",
        many: bool = False,
    ) -> Level:
        if not is_object_type(object_type):
            raise NotCompiled("an abstract type")
        columns = {attribute.key for attribute in inspect(model).column_attrs}
        level = Level(model, prefix=prefix)
        if prefix:
            level.source = aliased(model, name=prefix.rstrip("_"))
        if "id" in columns:
            level.columns["id"] = None
        for key, nodes in self._collect(object_type, selection_sets).items():
            name = nodes[0].name.value
            if name == "__typename":
                level.fields.append((key, Constant(object_type.name)))
                continue
            definition = object_type.fields[name]
            spec = self._spec(definition)
            strawberry_field = definition.extensions[DEFINITION]
            if isinstance(spec, FromColumns):
                if not is_leaf_type(get_nullable_type(definition.type)):
                    raise NotCompiled("computed objects")
                level.columns.update(dict.fromkeys(spec.columns))
                scalar = get_nullable_type(definition.type)
                non_null = is_non_null_type(definition.type)
                computed = Leaf(name, scalar.serialize, non_null, compute=spec.compute)
                level.fields.append((key, computed))
            elif isinstance(spec, PluginColumn | SqlValue):
                level.fields.append((key, self._value(level, spec, definition, columns)))
            elif spec is not None:
                if isinstance(spec, ById):
                    raise NotCompiled("a root form below the root")
                if prefix:
                    raise NotCompiled("rows referred to by a joined row")
                load = self._load(spec, definition, nodes, under_many=many)
                if isinstance(spec, Reference):
                    level.columns[spec.key] = None
                if isinstance(spec, PageOf):
                    level.columns.update(dict.fromkeys(spec.parent_columns))
                level.fields.append((key, self._joined(level, load, nodes)))
            elif GLOBAL_ID in strawberry_field.metadata:
                global_id = GlobalId(strawberry_field.metadata[GLOBAL_ID], prefix + "id")
                level.fields.append((key, global_id))
            elif (
                strawberry_field.base_resolver is None
                and strawberry_field.python_name in columns
                and is_leaf_type(get_nullable_type(definition.type))
            ):
                column = strawberry_field.python_name
                level.columns[column] = None
                scalar = get_nullable_type(definition.type)
                serialize = None if _as_stored(model, column, scalar.name) else scalar.serialize
                leaf = Leaf(prefix + column, serialize, is_non_null_type(definition.type))
                level.fields.append((key, leaf))
            else:
                raise NotCompiled(f"field {object_type.name}.{name}")
        return level

    def _value(
        self,
        level: Level,
        spec: PluginColumn | SqlValue,
        definition: GraphQLField,
        columns: set[str],
    ) -> Leaf:
        """A value SQL computes for each row of ``level``: a column of its statement."""
        scalar = get_nullable_type(definition.type)
        if not is_leaf_type(scalar):
            raise NotCompiled("computed objects")
        if "id" not in columns:
            raise NotCompiled("a value for rows without an id")
        source = level.source if level.source is not None else level.model
        value = spec.expression(level.model, source)
        self.values += 1
        # The row's attribute: numbered, so one of its own in the plan.
        label = f"v{self.values}_{definition.extensions[DEFINITION].python_name}"
        if label in columns:
            raise NotCompiled("a value named as a column")
        level.values[label] = value
        try:
            stored = AS_STORED.get(scalar.name) is value.type.python_type
        except NotImplementedError:
            stored = False
        serialize = None if stored else scalar.serialize
        return Leaf(level.prefix + label, serialize, is_non_null_type(definition.type))

    def _joined(self, level: Level, load: Load, nodes: list[FieldNode]) -> Load | Joined:
        """A reference whose row holds columns and ids alone comes with its parent's row,
        by an outer join, instead of in a statement of its own."""
        spec, below = load.spec, load.level
        assert below is not None
        # A computed value reads its row's own column names, which a joined row prefixes.
        plain = all(
            isinstance(part, GlobalId | Constant)
            or (isinstance(part, Leaf) and part.compute is None)
            for _, part in below.fields
        )
        if not isinstance(spec, Reference) or not plain:
            return load
        self.joins += 1
        object_type = get_named_type(load.definition.type)
        joined = self._level(spec.model, object_type, _sub(nodes), prefix=f"j{self.joins}_")
        part = Joined(spec.key, joined, load.non_null)
        level.joins.append(part)
        return part

    def _collect(
        self, object_type: Any, selection_sets: list[SelectionSetNode]
    ) -> OrderedDict[str, list[FieldNode]]:
        """The fields asked of ``object_type``, by response key, as execution collects
        them; a directive anywhere leaves the document to the resolvers."""
        fields: OrderedDict[str, list[FieldNode]] = OrderedDict()
        waiting = list(selection_sets)
        pending = [s for selection_set in waiting for s in selection_set.selections]
        while pending:
            selection = pending.pop(0)
            if selection.directives:
                raise NotCompiled("a directive")
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, []).append(selection)
                continue
            if isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments[selection.name.value]
                condition, selection_set = fragment.type_condition, fragment.selection_set
            else:
                assert isinstance(selection, InlineFragmentNode)
                condition, selection_set = selection.type_condition, selection.selection_set
            if condition is not None and not self._applies(condition.name.value, object_type):
                continue
            pending[0:0] = selection_set.selections
        return fields

    def _applies(self, condition: str, object_type: GraphQLObjectType) -> bool:
        named = self.schema.get_type(condition)
        if named is object_type:
            return True
        return any(interface is named for interface in object_type.interfaces)


AS_STORED = {"String": str, "ID": str, "Boolean": bool}
"""Scalars that answer a column's value unchanged when it has this Python type."""


def _as_stored(model: type, column: str, scalar: str) -> bool:
    try:
        python_type = inspect(model).columns[column].type.python_type
    except NotImplementedError:
        return False
    return AS_STORED.get(scalar) is python_type


def _sub(nodes: list[FieldNode]) -> list[SelectionSetNode]:
    return [node.selection_set for node in nodes if node.selection_set is not None]
