"""Running a plan: its statements, level by level, on one driver connection, and the
answer built from the rows; ``CompiledReads`` keeps the plans of one schema."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLSchema,
)
from graphql.execution import VariableValues, get_argument_values, get_variable_values
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from graphql_api.graphql_base.compiled.forms import (
    ById,
    Children,
    NotCompiled,
    PageOf,
    Reference,
)
from graphql_api.graphql_base.compiled.planner import Planner
from graphql_api.graphql_base.compiled.plans import (
    PAGES_KEPT,
    Load,
    LoadedPage,
    PagePlan,
    Plan,
    page_key,
    runnable_statement,
)
from graphql_api.graphql_base.errors import PublicError
from graphql_api.graphql_base.relay import page_size, parse_global_id
from graphql_api.kernel.access import Principal
from graphql_api.kernel.driver_reads import DriverReads, Prepared
from graphql_api.kernel.pagination import InvalidCursor, decode_cursor
from graphql_api.settings import Settings


class Run:
    """One request of a plan: its variables, and the rows each load fetched."""

    def __init__(
        self, plan: Plan, variables: Any, connection: Any, driver: DriverReads, settings: Settings
    ) -> None:
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
            assert len(parents) <= 1, "the planner takes no page under a list"
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
        key = page_key(parent, spec, arguments)
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
            rows=runnable_statement(self.driver, statement),
            counting=runnable_statement(self.driver, counting) if counting is not None else None,
            size=size,
            after=after,
            key_names=key_names,
        )


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
            return await Run(plan, variables, None, self._driver, self.settings).answer()
        async with self._driver.connection() as connection:
            run = Run(plan, variables, connection, self._driver, self.settings)
            return await run.answer()
