"""``/graphql``: Strawberry's view with our context, speaking GraphQL over HTTP.

A client that accepts ``application/graphql-response+json`` gets it, with the status codes
of the GraphQL-over-HTTP specification: a request that never reached execution (it did
not parse or validate, or its variables did not fit) is 400 without ``data``. A client
that accepts only ``application/json`` gets the status 200 it has always had. Requests
refused before GraphQL (not JSON, a wrong method) answer with an error and a code too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.authentication import AuthenticationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult, SubscriptionExecutionResult

from graphql_api.auth.backend import TokenBackend, bearer_token
from graphql_api.graphql_base.compiled import CompiledReads
from graphql_api.graphql_base.context import Context
from graphql_api.graphql_base.errors import INTERNAL_SERVER_ERROR, never_executed
from graphql_api.kernel.access import NOBODY
from graphql_api.notifications.feed import EventFeed
from graphql_api.plugin_host.manager import Plugins
from graphql_api.settings import Settings
from graphql_api.users.tokens import UNKNOWN_TOKEN
from graphql_api.web.graphiql import GraphiQLPage, ServesGraphiQL
from graphql_api.web.graphiql.examples import STAFF_EXAMPLES
from graphql_api.web.planned_reads import PlannedReads
from graphql_api.web.request_json import decode_request_json
from graphql_api.web.staff_schema import build_schema
from graphql_api.web.trusted_documents import TrustedDocuments
from graphql_api.web.trusted_view import TrustedDocumentsView

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


@dataclass
class Answer:
    """How this request is answered: the media type the client accepts, and the status."""

    media_type: str
    status: HTTPStatus = HTTPStatus.OK


class GraphQLEndpoint(ServesGraphiQL, TrustedDocumentsView[Context]):
    """Strawberry's ASGI view with our context: the request's session, user and plugins;
    a request may name a trusted document instead of sending one (``TrustedDocumentsView``);
    GraphiQL is our own page (``graphql_api.web.graphiql``)."""

    def __init__(
        self,
        settings: Settings,
        plugins: Plugins,
        backend: TokenBackend,
        documents: TrustedDocuments,
        events: EventFeed,
    ) -> None:
        super().__init__(
            build_schema(settings, plugins.schema),
            graphql_ide="graphiql",
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
        )
        self.documents = documents
        self.settings = settings
        self.plugins = plugins
        self.backend = backend
        self.events = events
        self.graphiql = GraphiQLPage("Staff API", STAFF_EXAMPLES)
        self.planned = PlannedReads(
            CompiledReads(self.schema._schema, settings), settings, documents
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        answer = request.state.answer = Answer(accepted_media_type(request.headers.get("accept")))
        fast = request.method == "POST" and self.settings.compiled_reads == "on"
        request.state.tried_plan = fast
        if fast:
            planned = await self.planned.response(request, answer.media_type)
            if planned is not None:
                await planned(scope, receive, send)
                return
        try:
            response = await self.run(request)
        except HTTPException as refused:
            answer.status = HTTPStatus(refused.status_code)
            response = Response(_refusal(answer.status, refused.reason))
        if response.media_type != "text/html":  # GraphiQL's page is no GraphQL response
            if response.status_code == HTTPStatus.OK:  # else the view chose (503)
                response.status_code = answer.status
            response.headers["content-type"] = f"{answer.media_type}; charset=utf-8"
        await response(scope, receive, send)

    async def execute_resolved(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        """A planned query the fast lane left (a GET, say) is answered by its plan; any
        other runs through the resolvers, and a query that ran cleanly is planned."""
        if not isinstance(request_data, GraphQLRequestData) or request_data.query is None:
            return await super().execute_resolved(
                request, request_adapter, request_data, context, root_value, sub_response
            )
        query, name, variables = (
            request_data.query,
            request_data.operation_name,
            request_data.variables,
        )
        mode = self.settings.compiled_reads
        plan = self.planned.reads.plan_for(query, name) if mode == "on" else None
        if plan is not None and not getattr(request.state, "tried_plan", False):
            engine = context.db.engine
            data = await self.planned.answer(plan, variables, context.principal, engine)
            if data is not None:
                return ExecutionResult(data=data, errors=None)
        result = await super().execute_resolved(
            request, request_adapter, request_data, context, root_value, sub_response
        )
        if mode == "off" or not isinstance(result, ExecutionResult) or result.errors:
            return result
        if result.data:
            self.planned.learned(query, name)
        if mode == "check" and result.data is not None:
            differs = await self.planned.checked(
                query, name, result.data, variables, context.principal, context.db.engine
            )
            if differs is not None:
                return ExecutionResult(data=None, errors=[differs])
        return result

    def decode_json(self, data: str | bytes) -> object:
        return decode_request_json(data)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        body = process_result(result)
        if never_executed(result):
            # Nothing ran, so there is no data, not even null (GraphQL spec, "Response").
            del body["data"]
            if request.state.answer.media_type == GRAPHQL_RESPONSE:
                request.state.answer.status = _status_before_execution(result.errors or [])
        return body

    async def on_ws_connect(self, context: Context) -> None:
        """Authenticate a WebSocket client by the token of its ``connection_init`` payload
        (``{"Authorization": "Bearer gapi_..."}``), unless its upgrade request carried one;
        refused, the connection closes with 4403."""
        params = context.connection_params or {}
        header = params.get("Authorization", params.get("authorization"))
        token = bearer_token(header) if isinstance(header, str) else None
        if token is None:
            if context.principal is NOBODY:
                raise ConnectionRejectionError({"reason": UNKNOWN_TOKEN.reason})
            return
        try:
            context.principal = await self.backend.principal_for(token)
        except AuthenticationError as error:
            raise ConnectionRejectionError({"reason": str(error)}) from error

    async def get_context(self, request: Any, response: Any) -> Context:
        return Context(
            db=request.state.db,
            principal=getattr(request.user, "principal", NOBODY),
            known_permissions=self.plugins.permissions,
            settings=self.settings,
            roles=self.plugins.roles,
            filter_fields=self.plugins.filter_fields,
            plugin_infos=self.plugins.infos,
            access_changed=self.backend.cache.clear,
            events=self.events,
        )


def accepted_media_type(accept: str | None) -> str:
    """The media type to answer in: ``application/graphql-response+json`` when the client
    names it at least as gladly as ``application/json``; ``application/json`` otherwise,
    and for a missing header or wildcards alone (the specification's legacy default)."""
    named: dict[str, float] = {}
    for media_range in (accept or "").split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        if media_type.lower() in (GRAPHQL_RESPONSE, JSON):
            named[media_type.lower()] = _quality(parameters)
    if named.get(GRAPHQL_RESPONSE, 0) > 0 and named[GRAPHQL_RESPONSE] >= named.get(JSON, 0):
        return GRAPHQL_RESPONSE
    return JSON


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def _status_before_execution(errors: list[GraphQLError]) -> HTTPStatus:
    server_fault = any(e.extensions.get("code") == INTERNAL_SERVER_ERROR for e in errors)
    return HTTPStatus.INTERNAL_SERVER_ERROR if server_fault else HTTPStatus.BAD_REQUEST


def _refusal(status: HTTPStatus, reason: str) -> bytes:
    """A request refused before GraphQL ran, as a GraphQL response with the status's name
    as its code (``BAD_REQUEST``, ``METHOD_NOT_ALLOWED``)."""
    return json.dumps(
        {"errors": [{"message": reason, "extensions": {"code": status.name}}]}
    ).encode()
