"""``/graphql``: the staff API, Strawberry's view with our context, speaking GraphQL over
HTTP as ``TrustedDocumentsView`` does (media types, status codes, a code on every error);
a plain JSON POST of a planned query is answered by its plan before the view
(``PlannedReads``).
"""

from __future__ import annotations

from typing import Any

from cross_web import AsyncHTTPRequestAdapter
from starlette.authentication import AuthenticationError
from starlette.requests import Request
from starlette.responses import Response
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult, SubscriptionExecutionResult

from graphql_api.auth.backend import TokenBackend, bearer_token
from graphql_api.auth.sockets import SocketGuard, stop_served_process_within
from graphql_api.graphql_base.compiled import CompiledReads
from graphql_api.graphql_base.context import Context
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
from graphql_api.web.trusted_view import (
    GRAPHQL_RESPONSE,
    JSON,
    Answer,
    TrustedDocumentsView,
    accepted_media_type,
)

__all__ = ["GRAPHQL_RESPONSE", "JSON", "GraphQLEndpoint", "accepted_media_type"]


class GraphQLEndpoint(ServesGraphiQL, TrustedDocumentsView[Context]):
    """Strawberry's ASGI view with our context: the request's session, user and plugins;
    a request may name a trusted document instead of sending one (``TrustedDocumentsView``);
    GraphiQL is our own page (``graphql_api.web.graphiql``)."""

    legacy_null_data = False

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
        # WebSocket connections: their rights follow their token, their subscriptions are
        # bounded, and they close with 1001 when the process stops (auth.sockets).
        self.sockets = SocketGuard(
            backend,
            token_cache_seconds=settings.token_cache_seconds,
            per_connection=settings.max_subscriptions_per_connection,
            per_principal=settings.max_subscriptions_per_principal,
        )
        stop_served_process_within(settings.shutdown_seconds)  # a worker of `serve --workers`
        self.graphiql = GraphiQLPage("Staff API", STAFF_EXAMPLES)
        self.planned = PlannedReads(
            CompiledReads(self.schema._schema, settings), settings, documents
        )

    async def respond(self, request: Request, answer: Answer) -> Response:
        fast = request.method == "POST" and self.settings.compiled_reads == "on"
        request.state.tried_plan = fast
        if fast:
            planned = await self.planned.response(request, answer.media_type)
            if planned is not None:
                return planned
        return await super().respond(request, answer)

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
            # The plan runs on a connection of its own: ending the resolvers' read first keeps
            # a request to one connection at a time, so a pool (or PgBouncer's) that every
            # request holds cannot wait for itself.
            await context.db.release()
            differs = await self.planned.checked(
                query, name, result.data, variables, context.principal, context.db.engine
            )
            if differs is not None:
                return ExecutionResult(data=None, errors=[differs])
        return result

    def decode_json(self, data: str | bytes) -> object:
        return decode_request_json(data)

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
