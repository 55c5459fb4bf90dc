"""`POST /invocations`: parse the payload, call the entrypoint, render its result."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from . import actions
from .context import enter_request
from .dispatch import Encoded
from .invocation_log import Outcome, invocation_fields, log_invocation
from .streaming import EventStreamResponse
from .tracing import TRACING

if TYPE_CHECKING:
    from .app import BedrockAgentCoreApp

logger = logging.getLogger("bedrock_agentcore.app")

NO_ENTRYPOINT = "No entrypoint is registered: decorate a function with @app.entrypoint"


class InvocationEndpoint:
    """The ASGI endpoint behind `POST /invocations` for one app."""

    def __init__(self, app: BedrockAgentCoreApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracing = TRACING
        if tracing is None or not tracing.active():
            await self._serve(scope, receive, send)
            return
        # Begun and ended by hand rather than through a context manager: this runs on every call.
        opened = tracing.begin(scope["headers"])
        try:
            await self._serve(scope, receive, send)
        except Exception as error:
            tracing.fail(opened, error)
            raise
        finally:
            tracing.end(opened)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        context = enter_request(scope["headers"], request)
        response = await self._respond(request, receive, context)
        await response(scope, receive, send)

    async def _respond(self, request: Request, receive: Receive, context: Any) -> Response:
        started = time.perf_counter()
        body = await _read_body(receive)
        request._body = body  # handlers reading `context.request.body()` get it from the cache
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting
            fields = invocation_fields(Outcome.INVALID_REQUEST, started)
            logger.warning("Invalid JSON in request: %s", exc, extra=fields)
            return JSONResponse({"error": "Invalid JSON", "details": str(exc)}, status_code=400)

        app = self.app
        if app.debug:
            action = actions.requested_action(payload)
            if action is not None:
                return actions.perform(action, app.tasks)

        handler = app.entrypoint_handler
        if handler is None:
            logger.error(NO_ENTRYPOINT, extra=invocation_fields(Outcome.ERROR, started))
            return JSONResponse({"error": NO_ENTRYPOINT}, status_code=500)

        try:
            result = await app.dispatcher.call(handler, payload, context)
        except HTTPException as exc:
            failed = exc.status_code >= 500
            level, outcome = (
                (logging.ERROR, Outcome.ERROR) if failed else (logging.WARNING, Outcome.INVALID_REQUEST)
            )
            logger.log(
                level, "HTTP %d: %s", exc.status_code, exc.detail, extra=invocation_fields(outcome, started)
            )
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        except Exception as exc:
            # The process boundary for user code: report, keep serving.
            fields = invocation_fields(Outcome.ERROR, started)
            logger.exception("Invocation failed (%.3fs)", fields["durationMs"] / 1000, extra=fields)
            return JSONResponse({"error": str(exc)}, status_code=500)
        if isinstance(result, Encoded):
            log_invocation(Outcome.SUCCESS, started)
            return Response(bytes(result), media_type="application/json")
        log_invocation(
            Outcome.STREAMING if isinstance(result, EventStreamResponse) else Outcome.SUCCESS, started
        )
        return result


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


__all__ = ["NO_ENTRYPOINT", "InvocationEndpoint"]
