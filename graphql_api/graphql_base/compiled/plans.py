"""A planned operation: for each level, the columns its rows need, how each field is
answered from a row, and the loads, one statement each, that fetch the levels below."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLField,
)
from sqlalchemy import Select, bindparam, select

from graphql_api.graphql_base.compiled.forms import (
    ById,
    Children,
    NotCompiled,
    PageOf,
    Reference,
    Spec,
)
from graphql_api.graphql_base.relay import to_global_id
from graphql_api.kernel.driver_reads import DriverReads, NotRunnable, Prepared
from graphql_api.kernel.pagination import encode_cursor
from graphql_api.kernel.sql import any_of, id_list

if TYPE_CHECKING:
    from graphql_api.graphql_base.compiled.running import Run


@dataclass
class Leaf:
    """A scalar of a row: the ``column``'s value, or ``compute(row)`` when it is made of
    several; the level's generated function reads it."""

    column: str
    serialize: Callable[[Any], Any] | None
    """None where the column's values are already what the scalar answers (text, flags)."""
    non_null: bool
    compute: Callable[[Any], Any] | None = None


@dataclass
class GlobalId:
    """An ``id``, encoded from the row's ``column``."""

    type_name: str
    column: str = "id"


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
    values: dict[str, Any] = field(default_factory=dict)
    """Values SQL computes for each row (``PluginColumn``, ``SqlValue``), by label."""
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
        own += [value.label(self.prefix + label) for label, value in self.values.items()]
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
            if part.compute is None:
                lines.append(f"    {value} = row.{part.column}")
            else:
                namespace[f"compute{index}"] = part.compute
                lines.append(f"    {value} = compute{index}(row)")
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
            prepared = self._prepared[one] = runnable_statement(driver, self._statement(one))
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


def page_key(parent: Any, spec: PageOf, arguments: Mapping[str, Any]) -> Any:
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


def runnable_statement(driver: DriverReads, statement: Select[Any]) -> Prepared:
    try:
        return driver.prepare(statement)
    except NotRunnable as error:
        raise NotCompiled(str(error)) from error
