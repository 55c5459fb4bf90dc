"""The one ASGI layer every request passes: classification, authentication, rate limit, policy,
span and metrics, in that order, then the operation's handler.

Each step reads what the step before it found (the operation table's classification, the
authenticated caller), so a request is classified once, authenticated once, and observed by one
`Exchange` that both its span and its metrics read. HTTP requests go from here straight to their
operation's handler; a failure the server knows (`wire.KNOWN_FAILURES`) becomes its AWS error
shape here, through `wire_error`, and so does anything else before it is re-raised (the gateway is
the outermost layer for HTTP: `front.py`).
WebSocket handshakes are dispatched by Starlette's router (its WebSocket session handling), after
the same steps. Lifespan events pass straight through.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .access import AccessDirectory, enforce_policy
from .authentication import Authenticator
from .errors import UnknownOperation
from .operations import SCOPE_KEY, WEBSOCKET, Auth, OperationMatch, OperationTable
from .ratelimit import RateLimit
from .request_metrics import EXCHANGE, Exchange, RequestMetrics
from .tracing import OperationTracer
from .wire import KNOWN_FAILURES, wire_error

_HttpHandler = Callable[[Request], Awaitable[Response]]


class Gateway:
    """The outermost ASGI layer: everything a request goes through before its handler.

    `rate_limit`, `metrics` and `tracer` are None when the server runs without them.
    """

    def __init__(
        self,
        app: ASGIApp,
        table: OperationTable,
        authenticator: Authenticator,
        directory: AccessDirectory,
        rate_limit: RateLimit | None = None,
        metrics: RequestMetrics | None = None,
        tracer: OperationTracer | None = None,
    ) -> None:
        self.app = app
        self.table = table
        self.authenticator = authenticator
        self.directory = directory
        self.rate_limit = rate_limit
        self.metrics = metrics
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(time.perf_counter(), send, receive)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state[EXCHANGE] = exchange
        try:
            await self._serve(scope, exchange.receive if kind == "http" else receive, exchange.send, exchange)
        except Exception as error:
            exchange.failure = error
            if kind == "http" and exchange.status is None:
                # The last resort for a failure nobody knows (the gateway is outermost for HTTP, see
                # `front.py`): still an AWS error shape; re-raised so that uvicorn logs its stack.
                await wire_error(error).response()(scope, receive, exchange.send)
            raise
        except BaseException as error:
            exchange.failure = error
            raise
        finally:
            if self.metrics is not None:
                self.metrics.record(scope, exchange)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, exchange: Exchange) -> None:
        found = scope[SCOPE_KEY] = self.table.classify(scope)
        match = found if isinstance(found, OperationMatch) else None
        operation = match.operation if match is not None else None
        admission = await self.authenticator.admit(scope, receive, send, operation)
        if admission is None:
            return  # refused, and told why
        try:
            caller, receive, send = admission.caller, admission.receive, admission.send
            public = operation is not None and operation.auth is Auth.PUBLIC
            if self.rate_limit is not None and not public and not self.rate_limit.admits(scope, caller):
                await self.rate_limit.refuse(scope, receive, send)
                return
            if match is not None and not await enforce_policy(self.directory, scope, send, caller, match):
                return
            if match is None or match.error is not None:
                await self._unmatched(scope, receive, send)
                return
            if self.tracer is None or not match.operation.traced:
                await self._dispatch(scope, receive, send, match, exchange)
                return
            span = self.tracer.begin(match.operation.name, scope)
            try:
                await self._dispatch(scope, receive, send, match, exchange)
            except BaseException as error:
                self.tracer.failed(span, error)
                raise
            finally:
                self.tracer.end(span, scope, match.runtime_id, exchange)
        finally:
            admission.close()

    async def _dispatch(
        self, scope: Scope, receive: Receive, send: Send, match: OperationMatch, exchange: Exchange
    ) -> None:
        # A copy: the match is kept for the next request on this path, and a handler may change its own.
        scope["path_params"] = dict(match.params)
        if match.operation.method == WEBSOCKET:
            await self.app(scope, receive, send)
            return
        handler = cast(_HttpHandler, match.operation.handler)
        try:
            response = await handler(Request(scope, receive, send))
            await response(scope, receive, send)
        except KNOWN_FAILURES as error:
            if exchange.status is not None:
                raise  # the answer has begun: the connection is cut, and the error logged
            await wire_error(error).response()(scope, receive, send)

    async def _unmatched(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)  # the router's default refuses the handshake
            return
        found = scope[SCOPE_KEY]
        error = found.error or UnknownOperation(f"no operation is served at {scope.get('path', '')}")
        await error.response()(scope, receive, send)


__all__ = ["Gateway"]
