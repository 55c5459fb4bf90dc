"""`/ws`: the WebSocket entrypoint, with the same request context as invocations."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .context import enter_request

if TYPE_CHECKING:
    from .app import BedrockAgentCoreApp

logger = logging.getLogger("bedrock_agentcore.app")

INTERNAL_ERROR = 1011
NO_HANDLER = "No WebSocket handler is registered: decorate a function with @app.websocket"


async def _refuse_without_handler(websocket: WebSocket) -> None:
    # 403 like any ASGI app without the route, with the reason in the body where the server can
    # send one (ASGI's denial response); otherwise refusing the handshake is all ASGI allows.
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"error": NO_HANDLER}, status_code=403))
    else:
        await websocket.close(code=INTERNAL_ERROR, reason=NO_HANDLER)


class WebSocketEndpoint:
    """Runs the `@app.websocket` handler on the server loop (it awaits the socket, which lives there).

    A handler that raises closes the socket with 1011; a client that goes away is not an error.
    """

    def __init__(self, app: BedrockAgentCoreApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        context = enter_request(scope["headers"], websocket)
        handler = self.app.websocket_handler
        if handler is None:
            logger.error(NO_HANDLER)
            await _refuse_without_handler(websocket)
            return
        try:
            if handler.with_context:
                await handler.func(websocket, context)
            else:
                await handler.func(websocket)
        except WebSocketDisconnect:
            logger.debug("WebSocket client disconnected")
        except Exception:
            logger.exception("WebSocket handler failed")
            if websocket.application_state is not WebSocketState.DISCONNECTED:
                try:
                    await websocket.close(code=INTERNAL_ERROR)
                except (RuntimeError, OSError):
                    logger.debug("WebSocket already closed", exc_info=True)


__all__ = ["INTERNAL_ERROR", "NO_HANDLER", "WebSocketEndpoint"]
