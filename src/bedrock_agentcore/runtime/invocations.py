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
from .encoding import dumps

if TYPE_CHECKING:
    from .app import BedrockAgentCoreApp

logger = logging.getLogger("bedrock_agentcore.app")

NO_ENTRYPOINT = "No entrypoint is registered: decorate a function with @app.entrypoint"


class InvocationEndpoint:
    """The ASGI endpoint behind `POST /invocations` for one app."""

    def __init__(self, app: BedrockAgentCoreApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        context = enter_request(scope["headers"], request)
        response = await self._respond(request, context)
        await response(scope, receive, send)

    async def _respond(self, request: Request, context: Any) -> Response:
        started = time.perf_counter()
        try:
            payload = json.loads(await request.body())
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
            logger.warning("Invalid JSON in request: %s", exc)
            return JSONResponse({"error": "Invalid JSON", "details": str(exc)}, status_code=400)

        app = self.app
        if app.debug:
            action = actions.requested_action(payload)
            if action is not None:
                return actions.perform(action, app.tasks)

        handler = app.entrypoint_handler
        if handler is None:
            logger.error(NO_ENTRYPOINT)
            return JSONResponse({"error": NO_ENTRYPOINT}, status_code=500)

        try:
            result = await app.dispatcher.call(handler, payload, context)
            if isinstance(result, Response):
                return result
            body = dumps(result).encode("utf-8")
        except HTTPException as exc:
            level = logging.ERROR if exc.status_code >= 500 else logging.WARNING
            logger.log(level, "HTTP %d: %s", exc.status_code, exc.detail)
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        except Exception as exc:
            # The process boundary for user code: report, keep serving.
            logger.exception("Invocation failed (%.3fs)", time.perf_counter() - started)
            return JSONResponse({"error": str(exc)}, status_code=500)
        logger.debug("Invocation completed (%.3fs)", time.perf_counter() - started)
        return Response(body, media_type="application/json")


__all__ = ["NO_ENTRYPOINT", "InvocationEndpoint"]
