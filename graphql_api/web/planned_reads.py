"""``/graphql``'s side of compiled reads (``graphql_base.compiled``): answering a request
whose document has a plan, straight from the HTTP request when it is a plain JSON POST.

A planned query is answered without Strawberry's view: the body is read as the view reads
it, the document found as it finds it (trusted documents included), and the answer
written as it writes it. Whatever is not that plain case (another content type, a batch,
a refused document, a request its plan cannot answer) goes on to the view, which answers
or refuses it as ever.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import GraphQLError, parse
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from graphql_api.graphql_base.compiled import CompiledReads, NotCompiled, Plan
from graphql_api.graphql_base.cost import query_cost
from graphql_api.graphql_base.text_inputs import variables_problem
from graphql_api.kernel.access import NOBODY, Principal
from graphql_api.kernel.db import one_line
from graphql_api.kernel.requests import current_request
from graphql_api.settings import Settings
from graphql_api.web.request_json import decode_request_json
from graphql_api.web.trusted_documents import DocumentRefused, TrustedDocuments

logger = logging.getLogger("graphql_api")

COMPILED_READ_DIFFERS = "The planned answer differs from the resolvers' (compiled_reads=check)."
JSON = "application/json"


class PlannedReads:
    """The plans of one endpoint's schema, and how requests use them."""

    def __init__(self, reads: CompiledReads, settings: Settings, documents: TrustedDocuments):
        self.reads = reads
        self.settings = settings
        self.documents = documents

    async def response(self, request: Request, media_type: str) -> Response | None:
        """The answer to a plain JSON POST of a planned query, or None for the view."""
        if request.headers.get("content-type", "").partition(";")[0].strip().lower() != JSON:
            return None
        try:
            body = decode_request_json(await request.body())
        except HTTPException:
            return None
        if not isinstance(body, dict) or not _plain(body):
            return None
        try:
            query = self.documents.document(body.get("query"), body.get("documentId"))
        except DocumentRefused:
            return None
        plan = self.reads.plan_for(query, body.get("operationName")) if query else None
        if plan is None:
            return None
        principal = getattr(request.user, "principal", NOBODY)
        data = await self.answer(plan, body.get("variables"), principal, request.state.db.engine)
        if data is None:
            return None
        return Response(orjson.dumps({"data": data}), media_type=f"{media_type}; charset=utf-8")

    async def answer(
        self,
        plan: Plan,
        variables: dict[str, Any] | None,
        principal: Principal,
        engine: AsyncEngine,
        *,
        record: bool = True,
    ) -> dict[str, Any] | None:
        """The data of one request of a planned query; None leaves it to the resolvers.
        ``record``: the request's log line and metrics count it as answered."""
        if variables_problem(variables or {}) is not None:
            return None
        try:
            coerced = self.reads.variables(plan, variables)
            if plan.priced_by_variables:
                cost = query_cost(
                    self.reads.schema, plan.document, plan.operation_name, variables, self.settings
                )
                if cost is None or cost > self.settings.max_query_cost:
                    return None
            data = await self.reads.answer(plan, coerced, principal, engine)
        except NotCompiled:
            return None  # the resolvers answer, or report, the same request
        except Exception as error:
            # The driver's own errors (a dropped connection, a statement timeout) are not
            # SQLAlchemy's: the resolvers, meeting the same, report them as ever (503,
            # TIMEOUT). Only the check mode, where they must agree, lets it through.
            if self.settings.compiled_reads == "check":
                raise
            logger.warning("a planned read failed, the resolvers answer: %s", one_line(error))
            return None
        request = current_request()
        if record and request is not None:
            named = plan.operation.name
            request.operation = named.value if named else "anonymous"
            request.outcome = "ok"
        return data

    def learned(self, query: str, operation_name: str | None) -> None:
        """A query ran cleanly through the resolvers: plan it, the first time only (its
        text is parsed again then, not on every request)."""
        if not self.reads.known(query, operation_name):
            self.reads.learn(parse(query), query, operation_name)

    async def checked(
        self,
        query: str,
        operation_name: str | None,
        resolved: dict[str, Any],
        variables: dict[str, Any] | None,
        principal: Principal,
        engine: AsyncEngine,
    ) -> GraphQLError | None:
        """For ``compiled_reads=check``: an error when the plan answers otherwise than the
        resolvers did."""
        plan = self.reads.plan_for(query, operation_name)
        if plan is None:
            return None
        data = await self.answer(plan, variables, principal, engine, record=False)
        if data is None or data == resolved:
            return None
        logger.error("compiled read differs: %s\n%r\n%r", query, resolved, data)
        return GraphQLError(COMPILED_READ_DIFFERS)


def _plain(body: dict[str, Any]) -> bool:
    """A request as the view would take it: its members of the expected types."""
    return (
        isinstance(body.get("query"), str | None)
        and isinstance(body.get("documentId"), str | None)
        and isinstance(body.get("operationName"), str | None)
        and isinstance(body.get("variables"), dict | None)
    )
