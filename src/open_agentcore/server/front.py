"""The runtime server's ASGI app: Starlette, with every request entering through the gateway first.

Starlette puts its own last-resort error layer (`ServerErrorMiddleware`) in front of any
middleware, so each HTTP request used to pass it and Starlette's own dispatch before the gateway,
which then called the operation's handler itself. Here the gateway is the outermost callable:
HTTP requests go from uvicorn to the gateway (which answers anything it does not know with an AWS
error shape itself, see `gateway.py`), and only what the gateway hands on (WebSocket handshakes,
the lifespan) runs through Starlette's stack: its error layer, exception handlers and router.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send


class RuntimeApp(Starlette):
    """Starlette whose requests enter through `front` (the gateway) when one is set.

    Build the gateway with `stack` as its app: that is Starlette's own handling, so the gateway
    is never entered twice. Routes still read `request.app` (this app) and its `state`.
    """

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await self.front(scope, receive, send)

    async def stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Starlette's own handling of a request: error layer, exception handlers, router."""
        await super().__call__(scope, receive, send)


__all__ = ["RuntimeApp"]
