"""Compiled reads: a query planned once into one SQL statement per level, answered from rows.

Resolving field by field costs graphql-core some microseconds per field, and a page of 100
rows with five fields is 600 of them. A query document that asks only for what rows hold
(columns, ids, rows referred to, children, pages) is instead planned once: each level of
the query is one statement over the rows of the level above, selecting only the columns
asked for, and the answer is built from the rows directly.

What a plan cannot answer exactly as the resolvers would, it leaves to them: a document
with directives, abstract types or fields without a compiled form is never planned, and a
request of a planned document falls back whenever its variables, arguments, permissions
or rows are not the plain case (an invalid id, a missing permission, a null where the
schema promises a value, too high a cost). Reads change nothing, so falling back part way
is safe. A document is planned only after it has once run without errors through the
resolvers, with every validation rule, so a plan never answers what they would refuse.

Fields get a compiled form through their ``metadata`` (``compiled(...)``): ``ById`` for a
root field fetching one row, ``Reference`` for a row a column refers to, ``Children`` for
the rows referring to their parent, ``PageOf`` for a connection. A field without a
resolver whose name is a column of its parent's model is read from that column; an ``id``
made by ``global_id_field`` is encoded from the ``id`` column.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
from graphql.execution import VariableValues, get_argument_values, get_variable_values
from graphql.utilities import get_operation_ast
from sqlalchemy import Select, bindparam, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import aliased
from strawberry.permission import PermissionExtension

from graphql_api.api.access import Needs
from graphql_api.api.cost import DEFINITION
from graphql_api.api.errors import PublicError
from graphql_api.api.relay import GLOBAL_ID, page_size, parse_global_id, to_global_id
from graphql_api.kernel.access import Principal
from graphql_api.kernel.driver_reads import DriverReads, NotRunnable, Prepared
from graphql_api.kernel.pagination import InvalidCursor, Ordering, decode_cursor, encode_cursor
from graphql_api.kernel.sql import any_of, id_list
from graphql_api.settings import Settings

COMPILED = "compiled.read"
"""Key of a field's compiled form in its ``strawberry.field(metadata=...)``."""


class NotCompiled(Exception):
    """This document, or this request of it, is answered by the resolvers."""


@dataclass(frozen=True)
class ById:
    """A root field: the ``model`` row whose global id (of ``type_name``) is the ``id``
    argument; null when there is none."""

    model: type
    type_name: str


@dataclass(frozen=True)
class Reference:
    """The ``model`` row whose id the parent row's ``key`` column holds; null for none."""

    model: type
    key: str


@dataclass(frozen=True)
class Children:
    """The ``model`` rows whose ``parent_key`` column holds the parent row's id, sorted by
    the ``order`` columns."""

    model: type
    parent_key: str
    order: tuple[str, ...]


@dataclass(frozen=True)
class PageOf:
    """A connection: a page of ``query(parent row, arguments)`` (the parent None at the
    root), which gives the statement and its ordering, or None to leave the arguments to
    the resolver. Below the root it is planned for one parent row only."""

    model: type
    query: Callable[[Any, Mapping[str, Any]], tuple[Select[Any], Ordering] | None]
    parent_columns: tuple[str, ...] = ()
    """Columns of the parent row ``query`` reads."""


@dataclass(frozen=True)
class FromColumns:
    """A value ``compute(row)`` makes of the parent row's ``columns`` (a model property, a
    maintained count)."""

    columns: tuple[str, ...]
    compute: Callable[[Any], Any]


Spec = ById | Reference | Children | PageOf | FromColumns


def compiled(spec: Spec) -> dict[str, Any]:
    """``metadata`` giving a field its compiled form."""
    return {COMPILED: spec}


# --- plans ---------------------------------------------------------------------------


@dataclass
class Leaf:
    column: str
    serialize: Callable[[Any], Any] | None
    """None where the column's values are already what the scalar answers (text, flags)."""
    non_null: bool

    def value(self, run: Run, row: Any) -> Any:
        value = getattr(row, self.column)
        if value is None:
            if self.non_null:
                raise NotCompiled("a null where the schema promises a value")
            return None
        return value if self.serialize is None else self.serialize(value)


@dataclass
class Computed:
    compute: Callable[[Any], Any]
    serialize: Callable[[Any], Any]
    non_null: bool

    def value(self, run: Run, row: Any) -> Any:
        value = self.compute(row)
        if value is None:
            if self.non_null:
                raise NotCompiled("a null where the schema promises a value")
            return None
        return self.serialize(value)


@dataclass
class GlobalId:
    type_name: str
    column: str = "id"

    def value(self, run: Run, row: Any) -> Any:
        return to_global_id(self.type_name, getattr(row, self.column))


@dataclass
class Constant:
    """``__typename``."""

    name: str

    def value(self, run: Run, row: Any) -> Any:
        return self.name


@dataclass
class Level:
    """The selection of one object type: the columns its rows need and what to answer."""

    model: type
    fields: list[tuple[str, Any]] = field(default_factory=list)
    columns: dict[str, None] = field(default_factory=dict)
    joins: list[Joined] = field(default_factory=list)
    """Rows referred to that come in this level's statement, by an outer join."""
    prefix: str = ""
    """For a joined level: what its columns are labelled with in the parent's rows."""
    source: Any = None
    """For a joined level: the alias of its table."""

    _answer: Callable[[Run, Any], dict[str, Any]] | None = None

    def answer(self, run: Run, row: Any) -> dict[str, Any]:
        if self._answer is None:
            self._answer = _generated(self)
        return self._answer(run, row)

    def selected(self, extra: tuple[str, ...] = ()) -> list[Any]:
        """The columns this level's statement selects, those of joined rows included."""
        source = self.source if self.source is not None else self.model
        own = [
            getattr(source, column).label(self.prefix + column)
            if self.prefix
            else getattr(source, column)
            for column in {**self.columns, **dict.fromkeys(extra)}
        ]
        return own + [column for join in self.joins for column in join.level.selected()]

    def joined(self, statement: Select[Any]) -> Select[Any]:
        """``statement`` with an outer join for each joined reference."""
        for join in self.joins:
            alias = join.level.source
            statement = statement.outerjoin(alias, alias.id == getattr(self.model, join.key))
        return statement


@dataclass
class Joined:
    """A reference whose row comes with its parent's, by an outer join: a level with
    columns and ids alone."""

    key: str
    level: Level
    non_null: bool

    def value(self, run: Run, row: Any) -> Any:
        if getattr(row, self.level.prefix + "id") is None:
            if self.non_null:
                raise NotCompiled("a missing row where the schema promises one")
            return None
        return self.level.answer(run, row)


def _generated(level: Level) -> Callable[[Run, Any], dict[str, Any]]:
    """``level.answer`` as one function of a row: a dict display reading each column,
    without a call per field. Its names are column keys and GraphQL names, never input."""
    namespace: dict[str, Any] = {"NotCompiled": NotCompiled, "to_global_id": to_global_id}
    lines = ["def answer(run, row):"]
    items = []
    for index, (key, part) in enumerate(level.fields):
        value = f"v{index}"
        if isinstance(part, Leaf):
            lines.append(f"    {value} = row.{part.column}")
            if part.non_null:
                lines.append(f"    if {value} is None: raise NotCompiled('a null for a non-null')")
            expression = value
            if part.serialize is not None:
                namespace[f"serialize{index}"] = part.serialize
                expression = f"serialize{index}({value})"
                if not part.non_null:
                    expression = f"None if {value} is None else {expression}"
        elif isinstance(part, GlobalId):
            namespace[f"type{index}"] = part.type_name
            expression = f"to_global_id(type{index}, row.{part.column})"
        else:
            namespace[f"part{index}"] = part
            expression = f"part{index}.value(run, row)"
        items.append(f"{key!r}: {expression}")
    lines.append("    return {" + ", ".join(items) + "}")
    exec("\n".join(lines), namespace)  # its names are checked above; no input text
    return namespace["answer"]  # type: ignore[no-any-return]


@dataclass
class Load:
    """A field whose rows come from a statement of their own, run once for every parent
    row of its level."""

    spec: Spec
    definition: GraphQLField
    node: FieldNode
    non_null: bool
    level: Level | None = None
    connection: list[tuple[str, Any]] | None = None
    counted: bool = False
    """Whether the connection's ``totalCount`` is asked for."""

    _prepared: dict[bool, Prepared] = field(default_factory=dict)
    pages: OrderedDict[Any, PagePlan] = field(default_factory=OrderedDict)

    def prepared(self, driver: DriverReads, one: bool) -> Prepared:
        """The statement of a ``ById``, ``Reference`` or ``Children`` load, built once:
        only its parameter changes from request to request, ``key`` for ``one`` row or
        parent, ``ids`` for more. (Apart, because PostgreSQL plans ``= $1`` once for all,
        where ``= ANY($1)`` of an array of unknown length gets planned afresh.)"""
        prepared = self._prepared.get(one)
        if prepared is None:
            prepared = self._prepared[one] = _runnable(driver, self._statement(one))
        return prepared

    def _statement(self, one: bool) -> Select[Any]:
        assert self.level is not None
        spec = self.spec
        model: Any = spec.model
        selected = self.level.joined(select(*self.level.selected()))
        column = getattr(model, spec.parent_key) if isinstance(spec, Children) else model.id
        statement = selected.where(
            column == bindparam("key") if one else any_of(column, id_list("ids"))
        )
        if isinstance(spec, Children):
            statement = statement.order_by(*(getattr(model, name) for name in spec.order))
        return statement

    def value(self, run: Run, row: Any) -> Any:
        loaded = run.loaded[id(self)]
        spec = self.spec
        if isinstance(spec, Reference):
            target = loaded.get(getattr(row, spec.key))
            return self._one(run, target)
        if isinstance(spec, ById):
            return self._one(run, loaded)
        if isinstance(spec, Children):
            assert self.level is not None
            return [self.level.answer(run, child) for child in loaded.get(row.id, ())]
        return _connection(self, run, loaded)

    def _one(self, run: Run, target: Any) -> Any:
        if target is None:
            if self.non_null:
                raise NotCompiled("a missing row where the schema promises one")
            return None
        assert self.level is not None
        return self.level.answer(run, target)


@dataclass
class LoadedPage:
    rows: list[Any]
    key_names: tuple[str, ...]
    """The ordering's columns: a row's cursor is made of them."""
    has_next_page: bool
    has_previous_page: bool
    total: int | None

    @property
    def keys(self) -> list[tuple[Any, ...]]:
        # Made only when cursors are asked for.
        return [tuple(getattr(row, name) for name in self.key_names) for row in self.rows]


@dataclass(frozen=True)
class PagePlan:
    """The statements of one page of a ``PageOf``, for one set of arguments and parent."""

    rows: Prepared
    counting: Prepared | None
    size: int
    after: str | None
    key_names: tuple[str, ...]


PAGES_KEPT = 256
"""Page statements a load keeps, by arguments and parent."""


def _page_key(parent: Any, spec: PageOf, arguments: Mapping[str, Any]) -> Any:
    """What a page's statements depend on, or None when it cannot be a key."""
    frozen = tuple(sorted(arguments.items()))
    try:
        hash(frozen)
    except TypeError:
        return None
    if parent is None:
        return frozen
    return frozen, tuple(getattr(parent, column) for column in ("id", *spec.parent_columns))


def _connection(load: Load, run: Run, page: LoadedPage) -> dict[str, Any]:
    assert load.connection is not None and load.level is not None
    level = load.level
    answer: dict[str, Any] = {}
    for key, part in load.connection:
        kind, selection = part
        if kind == "edges":
            answer[key] = [
                {
                    edge_key: (
                        level.answer(run, row)
                        if edge_kind == "node"
                        else encode_cursor(row_key)
                        if edge_kind == "cursor"
                        else edge_kind[1]
                    )
                    for edge_key, edge_kind in selection
                }
                for row, row_key in zip(page.rows, page.keys, strict=True)
            ]
        elif kind == "nodes":
            answer[key] = [level.answer(run, row) for row in page.rows]
        elif kind == "pageInfo":
            answer[key] = {info_key: _page_info(page, name) for info_key, name in selection}
        elif kind == "totalCount":
            answer[key] = page.total
        else:
            answer[key] = selection
    return answer


def _page_info(page: LoadedPage, name: Any) -> Any:
    if isinstance(name, tuple):  # __typename
        return name[1]
    if name == "hasNextPage":
        return page.has_next_page
    if name == "hasPreviousPage":
        return page.has_previous_page
    if not page.keys:
        return None
    return encode_cursor(page.keys[0] if name == "startCursor" else page.keys[-1])


@dataclass
class Plan:
    """One operation of one document, planned."""

    operation: Any
    roots: list[tuple[str, Any]]
    loads: list[tuple[Load, list[Load]]]
    """Each root load, then the loads below it in the order they run (level by level)."""
    permissions: frozenset[str]
    document: DocumentNode
    operation_name: str | None
    priced_by_variables: bool
    """Whether a page size comes from a variable, so the cost is priced per request."""


# --- planning --------------------------------------------------------------------------


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
            load = self._load(spec, definition, nodes)
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

    def _load(self, spec: Spec, definition: GraphQLField, nodes: list[FieldNode]) -> Load:
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
            load.level = self._level(spec.model, named, _sub(nodes))
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
        load.level = self._level(load.spec.model, node_type, node_sets)
        return parts

    def _level(
        self,
        model: type,
        object_type: Any,
        selection_sets: list[SelectionSetNode],
        prefix: str = "",
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
                computed = Computed(
                    spec.compute, scalar.serialize, is_non_null_type(definition.type)
                )
                level.fields.append((key, computed))
            elif spec is not None:
                if isinstance(spec, ById):
                    raise NotCompiled("a root form below the root")
                if prefix:
                    raise NotCompiled("rows referred to by a joined row")
                load = self._load(spec, definition, nodes)
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

    def _joined(self, level: Level, load: Load, nodes: list[FieldNode]) -> Load | Joined:
        """A reference whose row holds columns and ids alone comes with its parent's row,
        by an outer join, instead of in a statement of its own."""
        spec, below = load.spec, load.level
        assert below is not None
        plain = all(isinstance(part, Leaf | GlobalId | Constant) for _, part in below.fields)
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


# --- running ---------------------------------------------------------------------------


class Run:
    """One request of a plan: its variables, and the rows each load fetched."""

    def __init__(
        self,
        schema: GraphQLSchema,
        plan: Plan,
        variables: Any,
        connection: Any,
        driver: DriverReads,
        settings: Settings,
    ) -> None:
        self.schema = schema
        self.plan = plan
        self.variables = variables
        self.connection = connection
        self.driver = driver
        self.settings = settings
        self.loaded: dict[int, Any] = {}
        self.parents: dict[int, list[Any]] = {}

    async def answer(self) -> dict[str, Any]:
        for root, below in self.plan.loads:
            await self._fetch(root, [None])
            for load in below:
                await self._fetch(load, self.parents[id(load)])
        return {key: part.value(self, None) for key, part in self.plan.roots}

    async def _fetch(self, load: Load, parents: list[Any]) -> None:
        assert load.level is not None
        spec = load.spec
        rows: list[Any]
        if isinstance(spec, ById):
            global_id = get_argument_values(load.definition, load.node, self.variables)["id"]
            parsed = parse_global_id(global_id)
            if parsed is None or parsed[0] != spec.type_name:
                raise NotCompiled("an invalid id")
            rows = await self._rows(load.prepared(self.driver, one=True), {"key": parsed[1]})
            self.loaded[id(load)] = rows[0] if rows else None
        elif isinstance(spec, Reference):
            ids = list({getattr(p, spec.key) for p in parents} - {None})
            rows = await self._by_ids(load, ids)
            self.loaded[id(load)] = {row.id: row for row in rows}
        elif isinstance(spec, Children):
            rows = await self._by_ids(load, list({p.id for p in parents}))
            grouped: dict[int, list[Any]] = defaultdict(list)
            for row in rows:
                grouped[getattr(row, spec.parent_key)].append(row)
            self.loaded[id(load)] = grouped
        else:
            if len(parents) > 1:
                raise NotCompiled("a page under more than one row")
            arguments = get_argument_values(load.definition, load.node, self.variables)
            page = await self._page(load, spec, parents[0], arguments)
            self.loaded[id(load)] = page
            rows = page.rows
        for child in (part for _, part in load.level.fields if isinstance(part, Load)):
            self.parents[id(child)] = rows

    async def _by_ids(self, load: Load, ids: list[int]) -> list[Any]:
        if not ids:
            return []
        if len(ids) == 1:
            return await self._rows(load.prepared(self.driver, one=True), {"key": ids[0]})
        return await self._rows(load.prepared(self.driver, one=False), {"ids": ids})

    async def _rows(self, prepared: Prepared, parameters: dict[str, Any] | None = None) -> Any:
        assert self.connection is not None, "a plan with loads runs on a connection"
        return await self.driver.rows(self.connection, prepared, parameters)

    async def _page(
        self, load: Load, spec: PageOf, parent: Any, arguments: Mapping[str, Any]
    ) -> LoadedPage:
        key = _page_key(parent, spec, arguments)
        planned = load.pages.get(key) if key is not None else None
        if planned is None:
            planned = self._page_plan(load, spec, parent, arguments)
            if key is not None:
                load.pages[key] = planned
                if len(load.pages) > PAGES_KEPT:
                    load.pages.popitem(last=False)
        rows = await self._rows(planned.rows)
        total = (await self._rows(planned.counting))[0][0] if planned.counting else None
        return LoadedPage(
            rows=rows[: planned.size],
            key_names=planned.key_names,
            has_next_page=len(rows) > planned.size,
            has_previous_page=planned.after is not None,
            total=total,
        )

    def _page_plan(
        self, load: Load, spec: PageOf, parent: Any, arguments: Mapping[str, Any]
    ) -> PagePlan:
        assert load.level is not None
        try:
            planned = spec.query(parent, arguments)
            if planned is None:
                raise NotCompiled("arguments the plan does not take")
            whole, ordering = planned
            size = page_size(
                arguments.get("first"), self.settings.default_page_size, self.settings.max_page_size
            )
            after = arguments.get("after")
            query = (
                whole if after is None else ordering.after(whole, decode_cursor(after, ordering))
            )
        except (PublicError, InvalidCursor) as error:
            raise NotCompiled("arguments the resolver refuses") from error
        key_names = tuple(column.key for column in ordering.columns)
        selected = ordering.apply(query).with_only_columns(*load.level.selected(key_names))
        statement = load.level.joined(selected).limit(size + 1)
        counting = None
        if load.counted:
            counting = select(func.count()).select_from(whole.order_by(None).subquery())
        return PagePlan(
            rows=_runnable(self.driver, statement),
            counting=_runnable(self.driver, counting) if counting is not None else None,
            size=size,
            after=after,
            key_names=key_names,
        )


def _runnable(driver: DriverReads, statement: Select[Any]) -> Prepared:
    try:
        return driver.prepare(statement)
    except NotRunnable as error:
        raise NotCompiled(str(error)) from error


class CompiledReads:
    """The plans of one schema, by document text and operation name."""

    MAX_PLANS = 1000

    def __init__(self, schema: GraphQLSchema, settings: Settings) -> None:
        self.schema = schema
        self.settings = settings
        self.planner = Planner(schema)
        self._plans: OrderedDict[tuple[str, str | None], Plan | None] = OrderedDict()
        self._driver: DriverReads | None = None

    def plan_for(self, query: str, operation_name: str | None) -> Plan | None:
        """The plan of a document that ran without errors before; None if it has none."""
        key = (query, operation_name)
        plan = self._plans.get(key)
        if plan is not None:
            self._plans.move_to_end(key)
        return plan

    def known(self, query: str, operation_name: str | None) -> bool:
        return (query, operation_name) in self._plans

    def learn(self, document: DocumentNode, query: str, operation_name: str | None) -> None:
        """Plan a document that has just run without errors, or remember it has no plan."""
        try:
            plan: Plan | None = self.planner.plan(document, operation_name)
        except NotCompiled:
            plan = None
        self._plans[(query, operation_name)] = plan
        if len(self._plans) > self.MAX_PLANS:
            self._plans.popitem(last=False)

    def variables(self, plan: Plan, given: Mapping[str, Any] | None) -> VariableValues:
        coerced = get_variable_values(
            self.schema, plan.operation.variable_definitions or (), dict(given or {})
        )
        if not isinstance(coerced, VariableValues):
            raise NotCompiled("variables that do not fit")
        return coerced

    async def answer(
        self, plan: Plan, variables: VariableValues, principal: Principal, engine: AsyncEngine
    ) -> dict[str, Any]:
        """The data of one request, or ``NotCompiled`` for the resolvers to answer it."""
        if not all(principal.can(permission) for permission in plan.permissions):
            raise NotCompiled("a permission the caller lacks")
        if self._driver is None or self._driver.engine is not engine:
            self._driver = DriverReads(engine)
        if not plan.loads:
            return await Run(
                self.schema, plan, variables, None, self._driver, self.settings
            ).answer()
        async with self._driver.connection() as connection:
            run = Run(self.schema, plan, variables, connection, self._driver, self.settings)
            return await run.answer()
