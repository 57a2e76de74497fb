"""The view both GraphQL endpoints are (``/graphql`` and ``/portal/graphql``): Strawberry's,
speaking GraphQL over HTTP, and running the document a request (or a WebSocket
``subscribe`` message) names by ``documentId`` instead of a ``query`` of its own, and, when
only trusted documents may run, refusing any other before it is parsed (docs/http.md).
The two share one manifest.

A client that accepts ``application/graphql-response+json`` gets it, with the status codes
of the GraphQL-over-HTTP specification: a request that never reached execution (it did
not parse or validate, or its variables did not fit) is 400 without ``data``. A client
that accepts only ``application/json`` gets the status 200 it has always had. A request
refused before GraphQL (a body that is not UTF-8 or not JSON, JSON of the wrong shape, an
unknown ``operationName``, a wrong method) is a 4xx with an error whose code is the
status's name (``BAD_REQUEST``), in either media type: never a bare text, never a 500.
Every such refusal, and every error of a request the client got wrong, is logged at INFO
without a traceback; only server faults are errors with one."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Hashable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import orjson
from cross_web import AsyncHTTPRequestAdapter, BaseRequestProtocol, HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.authentication import AuthenticationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)
from strawberry.types import ExecutionResult, SubscriptionExecutionResult

from graphql_api.auth.sockets import (
    FORBIDDEN,
    GOING_AWAY,
    OPEN_SOCKETS,
    SocketGuard,
    socket_token,
)
from graphql_api.graphql_base.errors import (
    INTERNAL_SERVER_ERROR,
    LIMIT_EXCEEDED,
    SERVICE_UNAVAILABLE,
    TIMEOUT,
    PublicError,
    never_executed,
    unavailable_error,
)
from graphql_api.kernel.requests import current_request
from graphql_api.notifications.feed import RECHECK
from graphql_api.web.trusted_documents import DocumentRefused, TrustedDocuments

ContextT = TypeVar("ContextT")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
SERVER_FAULTS = frozenset({INTERNAL_SERVER_ERROR, SERVICE_UNAVAILABLE, TIMEOUT})
"""Codes of errors that are the server's, not the client's: logged where they happen."""
LOGGED_ERRORS = 5
"""Client errors of one request logged, at most (a document may hold hundreds)."""

logger = logging.getLogger("graphql_api.client_errors")


@dataclass
class Answer:
    """How this request is answered: the media type the client accepts, and the status."""

    media_type: str
    status: HTTPStatus = HTTPStatus.OK


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


class TrustedSubscribe(BaseGraphQLTransportWSHandler[Any, None]):
    """graphql-transport-ws, asking the view's ``documents`` which text each ``subscribe``
    message runs; a refused one gets an ``error`` message and the connection stays.

    On a view with ``sockets`` (a ``SocketGuard``: ``/graphql``), the connection's rights
    follow its token and its subscriptions are bounded (``graphql_api.auth.sockets``); every
    connection is closed with 1001 when the server stops."""

    QUERIES_AT_ONCE = 100
    """Queries and mutations one connection may run at once, besides its subscriptions."""
    CACHED_DOCUMENT = 20_000
    """Documents up to this many characters are parsed once to tell a subscription."""
    sockets_logger = logging.getLogger("graphql_api.sockets")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard: SocketGuard | None = getattr(self.view, "sockets", None)
        if self.guard is not None:
            # Ours replace Strawberry's limit, which counts queries too and has no code.
            self.max_subscriptions_per_connection = None
        self.closed = False
        self._subscriptions: set[asyncio.Task[Any]] = set()
        self._watching: asyncio.Task[None] | None = None

    async def handle(self) -> None:
        OPEN_SOCKETS.add(self)
        if self.guard is not None:
            # Copied into every operation's task: the feed asks before each event.
            RECHECK.set(self._before_event)
        try:
            if OPEN_SOCKETS.stopping:
                await self.going_away()
                return
            await super().handle()
        finally:
            OPEN_SOCKETS.discard(self)
            if self._watching is not None:
                self._watching.cancel()

    async def handle_message(self, message: Message) -> None:
        await super().handle_message(message)
        # Messages that arrived together are otherwise handled without a pause: a client
        # sending hundreds at once would hold up every other request until they are done.
        await asyncio.sleep(0)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self.guard is not None and self._watching is None:
            self._watching = asyncio.create_task(self._keep_checking(self.guard))

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload: dict[str, Any] = message.get("payload", {})  # type: ignore[assignment]
        if self.connection_acknowledged:
            try:
                if not await self._rights():
                    return  # closed with 4403: the operation does not run
            except Exception:
                self.sockets_logger.exception("checking a WebSocket connection's token failed")
                await self._refuse(message, unavailable_error())
                return
        document_id = payload.get("documentId")
        if self.connection_acknowledged:
            documents: TrustedDocuments = self.view.documents  # type: ignore[attr-defined]
            try:
                if not isinstance(document_id, str | None):
                    raise DocumentRefused(
                        HTTPStatus.BAD_REQUEST.name,
                        "The GraphQL operation's `documentId` must be a string.",
                    )
                query = documents.document(payload.get("query"), document_id)
            except DocumentRefused as refused:
                await self._refuse(message, PublicError(str(refused), refused.code))
                return
            if query is not None:
                payload["query"] = query
        counted = None
        fresh = message.get("id") not in self.operations  # else Strawberry closes with 4409
        if self.connection_acknowledged and self.guard is not None and fresh:
            refused, counted = self._within_limits(self.guard, payload)
            if refused is not None:
                await self._refuse(message, refused)
                return
        await super().handle_subscribe(message)
        if counted is not None:
            self._counting(message["id"], counted)

    async def send_message(self, message: Message) -> None:
        if not self.closed:  # nothing goes out once the connection is being closed
            await super().send_message(message)

    async def going_away(self) -> None:
        """The server stops: close with 1001 and end every operation."""
        await self._close(GOING_AWAY, "The server is stopping; connect again shortly.")

    async def _refuse(self, message: SubscribeMessage, error: GraphQLError) -> None:
        """Answer one ``subscribe`` with an ``error`` message; the connection stays."""
        await self.send_message(
            {"id": message["id"], "type": "error", "payload": [error.formatted]}
        )

    def _within_limits(
        self, guard: SocketGuard, payload: dict[str, Any]
    ) -> tuple[PublicError | None, Hashable | None]:
        """The refusal of a ``subscribe`` over the limits, or the key it is counted under
        (None for a query or a mutation)."""
        if len(self.operations) - len(self._subscriptions) >= self.QUERIES_AT_ONCE:
            message = (
                f"At most {self.QUERIES_AT_ONCE} queries and mutations run at once on one "
                "connection; wait for their answers."
            )
            return PublicError(message, LIMIT_EXCEEDED), None
        if not self._subscribes(payload.get("query"), payload.get("operationName")):
            return None, None
        if len(self._subscriptions) >= guard.per_connection:
            message = (
                f"At most {guard.per_connection} subscriptions run on one connection "
                "(GRAPHQL_API_MAX_SUBSCRIPTIONS_PER_CONNECTION); complete one first."
            )
            return PublicError(message, LIMIT_EXCEEDED), None
        key = guard.admit(self.context.principal)
        if key is None:
            message = (
                f"At most {guard.per_principal} subscriptions run for one user at once, on "
                "all connections (GRAPHQL_API_MAX_SUBSCRIPTIONS_PER_PRINCIPAL); complete one "
                "first."
            )
            return PublicError(message, LIMIT_EXCEEDED), None
        return None, key

    def _counting(self, operation_id: str, key: Hashable) -> None:
        """Count a subscription until its task ends, however it ends."""
        assert self.guard is not None
        guard, operation = self.guard, self.operations.get(operation_id)
        if operation is None or operation.task is None:  # Strawberry refused it
            guard.release(key)
            return
        task = operation.task
        self._subscriptions.add(task)

        def ended(_: asyncio.Task[Any]) -> None:
            self._subscriptions.discard(task)
            guard.release(key)

        task.add_done_callback(ended)

    def _subscribes(self, query: Any, operation_name: Any) -> bool:
        """Whether a document's operation is a subscription; a document that does not
        parse is none (Strawberry refuses it)."""
        if not isinstance(query, str) or not isinstance(operation_name, str | None):
            return False
        max_tokens = getattr(getattr(self.view, "settings", None), "max_tokens", None)
        if len(query) <= self.CACHED_DOCUMENT:
            return self._parsed_subscription(query, operation_name, max_tokens)
        return self._parsed_subscription.__wrapped__(query, operation_name, max_tokens)

    @staticmethod
    @functools.lru_cache(maxsize=512)
    def _parsed_subscription(query: str, operation_name: str | None, max_tokens: Any) -> bool:
        try:
            document = parse(query, max_tokens=max_tokens)
        except GraphQLError:
            return False
        operation = get_operation_ast(document, operation_name)
        return operation is not None and operation.operation == OperationType.SUBSCRIPTION

    async def _rights(self) -> bool:
        """Check again who the connection acts for. True: the context's principal is who
        the token stands for now (the next operation and event have its permissions);
        False: nobody, and the connection is closed with 4403."""
        if self.closed:
            return False
        if self.guard is None:
            return True
        upgrade = getattr(getattr(self.websocket, "ws", None), "headers", {})
        token = socket_token(self.context.connection_params, upgrade)
        if token is None:
            return True  # development mode without a token: nothing to revoke
        try:
            self.context.principal = await self.guard.principal_for(token)
        except AuthenticationError as refused:
            await self._close(FORBIDDEN, str(refused))
            return False
        return True

    async def _before_event(self) -> None:
        if not await self._rights():
            raise asyncio.CancelledError  # closed: nothing more goes out

    async def _keep_checking(self, guard: SocketGuard) -> None:
        while not self.closed:
            await asyncio.sleep(guard.recheck_seconds)
            try:
                await self._rights()
            except Exception as error:  # the database, say: the next tick tries again
                self.sockets_logger.warning("checking a WebSocket's token failed (%s)", error)

    async def _close(self, code: int, reason: str) -> None:
        """Close the connection (once) and end every operation it runs."""
        if self.closed:
            return
        self.closed = True
        with suppress(Exception):  # the client may be gone already
            # A close reason is at most 123 bytes.
            short = reason.encode()[:123].decode(errors="ignore")
            await self.websocket.close(code=code, reason=short)
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        if self._watching is not None and self._watching is not asyncio.current_task():
            self._watching.cancel()


class NonEmptySelectionSets(SchemaExtension):
    """Parse documents by the grammar of the GraphQL specification, a selection set holding
    at least one selection: graphql-core now also reads ``{ }``, which Strawberry's depth
    limit cannot measure (it failed as a server fault). ``{ }`` is a parse error again."""

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["allow_empty_selection_sets"] = False
        yield


class TrustedDocumentsView(GraphQL[ContextT, None]):
    """Strawberry's ASGI view of both endpoints: it asks ``documents`` which text each
    request runs, answers in the media type the client accepts with the status GraphQL
    over HTTP gives it, and writes answers with orjson."""

    documents: TrustedDocuments
    graphql_transport_ws_handler_class = TrustedSubscribe
    legacy_null_data = True
    """Whether an ``application/json`` answer to a request that never ran keeps
    ``"data": null``, as the portal's answers always have (its clients read it);
    ``/graphql`` drops it. ``application/graphql-response+json`` never has it (GraphQL
    over HTTP)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema.extensions = (*self.schema.extensions, NonEmptySelectionSets)  # type: ignore[attr-defined]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        answer = request.state.answer = Answer(accepted_media_type(request.headers.get("accept")))
        response = await self.respond(request, answer)
        if response.media_type != "text/html":  # GraphiQL's page is no GraphQL response
            if response.status_code == HTTPStatus.OK:  # else the view chose (503)
                response.status_code = answer.status
            response.headers["content-type"] = f"{answer.media_type}; charset=utf-8"
        await response(scope, receive, send)

    async def respond(self, request: Request, answer: Answer) -> Response:
        """The response to one HTTP request; one refused before GraphQL ran is an error
        with a code, its status the refusal's."""
        try:
            return await self.run(request)
        except HTTPException as refused:
            answer.status = HTTPStatus(refused.status_code)
            logger.info("request refused: %s %s", answer.status.name, _shortened(refused.reason))
            return Response(_refusal(answer.status, refused.reason))

    def encode_json(self, data: object) -> bytes:
        try:
            return orjson.dumps(data)
        except orjson.JSONEncodeError:
            # An error quoting what the client sent may hold half of a surrogate pair
            # (JSON can escape one, UTF-8 cannot carry it), or an integer too large for
            # orjson: the standard library writes both.
            return json.dumps(data, separators=(",", ":")).encode()

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        body = process_result(result)
        errors = result.errors or []
        client_errors = [e for e in errors if e.extensions.get("code") not in SERVER_FAULTS]
        for error in client_errors[:LOGGED_ERRORS]:
            # The client's mistake, not the server's news: one line each, no traceback.
            code = error.extensions.get("code")
            logger.info("GraphQL error %s: %s", code, _shortened(error.message))
        answer = getattr(request.state, "answer", None)
        if never_executed(result):
            graphql_response = answer is not None and answer.media_type == GRAPHQL_RESPONSE
            if graphql_response or not self.legacy_null_data:
                # Nothing ran, so there is no data, not even null (GraphQL spec, "Response").
                body.pop("data", None)
            if graphql_response:
                answer.status = _status_before_execution(errors)
        return body

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
            if not isinstance(request_data.operation_name, str | None):
                raise HTTPException(
                    400, "The GraphQL operation's `operationName` must be a string or null."
                )
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
        # The database could not serve the request, or stopped a statement at the time
        # limit: sending it again later, or asking for less, may work.
        errors = response_data.get("errors") if isinstance(response_data, dict) else None
        codes = {_code(error) for error in errors or []}
        if SERVICE_UNAVAILABLE in codes:
            response.status_code = HTTPStatus.SERVICE_UNAVAILABLE
        elif TIMEOUT in codes:
            response.status_code = HTTPStatus.GATEWAY_TIMEOUT
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


def _code(error: Any) -> str | None:
    """The code of a formatted error; None when it has none."""
    extensions = error.get("extensions") if isinstance(error, dict) else None
    return extensions.get("code") if isinstance(extensions, dict) else None


def _status_before_execution(errors: list[GraphQLError]) -> HTTPStatus:
    server_fault = any(e.extensions.get("code") == INTERNAL_SERVER_ERROR for e in errors)
    return HTTPStatus.INTERNAL_SERVER_ERROR if server_fault else HTTPStatus.BAD_REQUEST


def _refusal(status: HTTPStatus, reason: str) -> bytes:
    """A request refused before GraphQL ran, as a GraphQL response with the status's name
    as its code (``BAD_REQUEST``, ``METHOD_NOT_ALLOWED``)."""
    return json.dumps(
        {"errors": [{"message": reason, "extensions": {"code": status.name}}]}
    ).encode()


def _shortened(text: str, length: int = 300) -> str:
    """``text`` on one line, at most ``length`` characters, for the log."""
    line = " ".join(text.split())
    return line if len(line) <= length else f"{line[: length - 1]}…"
