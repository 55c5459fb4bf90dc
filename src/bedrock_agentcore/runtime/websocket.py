"""`/ws`: the WebSocket entrypoint, with the same request context as invocations."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from .context import enter_request

if TYPE_CHECKING:
    from .app import BedrockAgentCoreApp

logger = logging.getLogger("bedrock_agentcore.app")

INTERNAL_ERROR = 1011


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
            logger.error("No WebSocket handler is registered: decorate a function with @app.websocket")
            await websocket.close(code=INTERNAL_ERROR)
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


__all__ = ["INTERNAL_ERROR", "WebSocketEndpoint"]
