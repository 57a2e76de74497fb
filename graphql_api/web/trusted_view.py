"""The transports' side of trusted documents: Strawberry's view, running the document a
request (or a WebSocket ``subscribe`` message) names by ``documentId`` instead of a
``query`` of its own, and, when only trusted documents may run, refusing any other before
it is parsed (docs/http.md). ``/graphql`` and ``/portal/graphql`` are both such views,
sharing one manifest."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, TypeVar

import orjson
from cross_web import AsyncHTTPRequestAdapter, BaseRequestProtocol, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.types import ExecutionResult, SubscriptionExecutionResult

from graphql_api.graphql_base.errors import SERVICE_UNAVAILABLE, PublicError
from graphql_api.kernel.requests import current_request
from graphql_api.web.trusted_documents import DocumentRefused, TrustedDocuments

ContextT = TypeVar("ContextT")


class TrustedSubscribe(BaseGraphQLTransportWSHandler[Any, None]):
    """graphql-transport-ws, asking the view's ``documents`` which text each ``subscribe``
    message runs; a refused one gets an ``error`` message and the connection stays."""

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload: dict[str, Any] = message.get("payload", {})  # type: ignore[assignment]
        document_id = payload.get("documentId")
        if self.connection_acknowledged and isinstance(document_id, str | None):
            documents: TrustedDocuments = self.view.documents  # type: ignore[attr-defined]
            try:
                query = documents.document(payload.get("query"), document_id)
            except DocumentRefused as refused:
                error = PublicError(str(refused), refused.code)
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": [error.formatted]}
                )
                return
            if query is not None:
                payload["query"] = query
        await super().handle_subscribe(message)


class TrustedDocumentsView(GraphQL[ContextT, None]):
    """Strawberry's ASGI view of both endpoints: it asks ``documents`` which text each
    request runs, and writes answers with orjson."""

    documents: TrustedDocuments
    graphql_transport_ws_handler_class = TrustedSubscribe

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        # A browser following a link to a trusted document wants its answer.
        return (
            super().should_render_graphql_ide(request)
            and request.query_params.get("documentId") is None
        )

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: ContextT,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        # Batching is off, so Strawberry refused a list already.
        if isinstance(request_data, GraphQLRequestData):
            document_id = await self._document_id(request_adapter)
            try:
                request_data.query = self.documents.document(request_data.query, document_id)
            except DocumentRefused as refused:
                return _refused(refused, request_data.operation_name)
        return await self.execute_resolved(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def execute_resolved(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: ContextT,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        """Run a request whose document is known: ``request_data.query`` is its text."""
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        # The database could not serve the request: sending it again later may work.
        errors = response_data.get("errors") if isinstance(response_data, dict) else None
        if any(error["extensions"].get("code") == SERVICE_UNAVAILABLE for error in errors or []):
            response.status_code = HTTPStatus.SERVICE_UNAVAILABLE
        return response

    async def _document_id(self, request: AsyncHTTPRequestAdapter) -> str | None:
        """The request's ``documentId``, read where Strawberry read its ``query``."""
        if request.method == "GET":
            parameters: Any = request.query_params
        else:
            parameters = self.parse_json(await request.get_body())
        document_id = parameters.get("documentId")
        if not isinstance(document_id, str | None):
            raise HTTPException(400, "The GraphQL operation's `documentId` must be a string.")
        return document_id


def _refused(refused: DocumentRefused, operation_name: str | None) -> ExecutionResult:
    """A document refused before parsing, answered as one that did not validate; its log
    line and metrics count it as ``invalid`` under the operation name the client gave."""
    record = current_request()
    if record is not None:
        record.operation, record.outcome = operation_name, "invalid"
    return ExecutionResult(data=None, errors=[PublicError(str(refused), refused.code)])
