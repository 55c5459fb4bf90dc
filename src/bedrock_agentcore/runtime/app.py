"""`BedrockAgentCoreApp`: the Starlette application that turns decorated functions into an agent.

This module only assembles: dispatch, streaming, health, context, logging and serving each live
in their own module.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from starlette.types import Lifespan

from .context import propagate_to_threads
from .dispatch import Dispatcher, Handler, HandlerKind, handler_kind
from .health import PingEndpoint, PingHandler, TaskTracker
from .invocations import InvocationEndpoint
from .logs import RequestContextFormatter, setup_app_logger
from .loops import LoopPool
from .models import PingStatus
from .serve import resolve_host, resolve_port, serve
from .threads import ThreadPool
from .websocket import WebSocketEndpoint

_F = TypeVar("_F", bound=Callable[..., Any])


class BedrockAgentCoreApp(Starlette):
    """An agent server: `POST /invocations`, `GET /ping` and the `/ws` WebSocket.

    Register the handler with `@app.entrypoint` and start it with `app.run()`. It is a Starlette
    application, so `middleware=`, `lifespan=`, extra routes and ASGI servers all work as usual.
    """

    def __init__(
        self,
        debug: bool = False,
        lifespan: Lifespan[Any] | None = None,
        middleware: Sequence[Middleware] | None = None,
    ) -> None:
        self.tasks = TaskTracker()
        self.dispatcher = Dispatcher(LoopPool(), ThreadPool())
        self.entrypoint_handler: Handler | None = None
        self.websocket_handler: Handler | None = None
        routes = [
            Route("/invocations", InvocationEndpoint(self), methods=["POST"]),
            Route("/ping", PingEndpoint(self.tasks), methods=["GET"]),
            WebSocketRoute("/ws", WebSocketEndpoint(self)),
        ]
        super().__init__(debug=debug, routes=routes, middleware=middleware, lifespan=lifespan)
        self.logger = setup_app_logger(debug)
        propagate_to_threads()

    # Registration -------------------------------------------------------------------------

    def entrypoint(self, func: _F) -> _F:
        """Register the invocation handler: `handler(payload)` or `handler(payload, context)`.

        Any second positional parameter receives the `RequestContext`. Sync functions run in a
        thread pool, async functions on a worker event loop; generators and async generators
        stream as Server-Sent Events. Returns the function unchanged (with a `.run` shortcut).
        """
        self.entrypoint_handler = Handler.of(func)
        with contextlib.suppress(AttributeError, TypeError):
            func.run = functools.partial(self.run)  # type: ignore[attr-defined]
        return func

    def websocket(self, func: _F) -> _F:
        """Register the `/ws` handler: `async def handler(websocket, context)`."""
        self.websocket_handler = Handler.of(func)
        return func

    def ping(self, func: _F) -> _F:
        """Register a custom health function returning a `PingStatus` (or its string value).

        It is consulted on every `/ping` unless a status is forced; if it raises, the automatic
        status is used. It runs in a thread, so it may block briefly. Raises `TypeError` for an
        `async def` function, which could never report anything.
        """
        if handler_kind(func) is not HandlerKind.SYNC:
            raise TypeError("@app.ping needs a plain function returning a PingStatus, not an async one")
        self.tasks.ping_handler = func
        return func

    def async_task(self, func: _F) -> _F:
        """Mark an async function as background work: `/ping` says `HealthyBusy` while it runs.

        Raises `ValueError` for anything but an `async def` function.
        """
        if handler_kind(func) is not HandlerKind.ASYNC:
            raise ValueError("@app.async_task can only decorate async functions (async def)")
        tasks = self.tasks
        logger = self.logger

        @functools.wraps(func)
        async def tracked(*args: Any, **kwargs: Any) -> Any:
            task_id = tasks.add(func.__name__)
            started = time.monotonic()
            try:
                return await func(*args, **kwargs)
            except Exception:
                logger.exception("Async task failed: %s (%.3fs)", func.__name__, time.monotonic() - started)
                raise
            finally:
                tasks.complete(task_id)

        return tracked  # type: ignore[return-value]

    # Health and background tasks ----------------------------------------------------------

    def add_async_task(self, name: str, metadata: dict[str, Any] | None = None) -> int:
        """Register background work by hand; `/ping` reports `HealthyBusy` until it completes."""
        return self.tasks.add(name, metadata)

    def complete_async_task(self, task_id: int) -> bool:
        """Mark work registered with `add_async_task` as done; False if the id is unknown."""
        return self.tasks.complete(task_id)

    def get_async_task_info(self) -> dict[str, Any]:
        """`{"active_count": n, "running_jobs": [{"name": ..., "duration": seconds}, ...]}`."""
        return self.tasks.info()

    def get_current_ping_status(self) -> PingStatus:
        """The status `/ping` would report now (forced > custom handler > automatic)."""
        return self.tasks.status()

    def force_ping_status(self, status: PingStatus) -> None:
        """Report `status` regardless of tasks and the custom handler, until cleared."""
        self.tasks.forced_status = PingStatus(status)

    def clear_forced_ping_status(self) -> None:
        """Go back to the custom handler or the automatic status."""
        self.tasks.forced_status = None

    @property
    def handlers(self) -> dict[str, Callable[..., Any]]:
        """Registered handlers by role (`"main"` is the entrypoint), for introspection."""
        return {"main": self.entrypoint_handler.func} if self.entrypoint_handler else {}

    # Serving ----------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Start now what the first invocation would otherwise start on its way: a worker thread
        for a sync entrypoint, a worker loop for an async one. Blocks for a few milliseconds: call
        it off the serving loop, once serving (the runtime server's workers do, on a thread)."""
        handler = self.entrypoint_handler
        if handler is None:
            return
        if handler.kind is HandlerKind.SYNC:
            self.dispatcher.threads.prestart()
        elif handler.kind is not HandlerKind.ASYNC_GENERATOR:
            self.dispatcher.loops.prestart()

    def run(self, port: int | None = None, host: str | None = None, **uvicorn_kwargs: Any) -> None:
        """Serve the agent with uvicorn until SIGINT/SIGTERM.

        `port` defaults to `$PORT`, else 8080. `host` defaults to 0.0.0.0 inside a container
        (`/.dockerenv` exists or `DOCKER_CONTAINER` is set), else 127.0.0.1. Other keyword
        arguments go to `uvicorn.Config`. On SIGTERM, requests in flight get up to 30 s to finish
        (`timeout_graceful_shutdown=` changes it) and the call returns normally.
        """
        serve(self, resolve_host(host), resolve_port(port), self.debug, **uvicorn_kwargs)


__all__ = ["BedrockAgentCoreApp", "PingHandler", "RequestContextFormatter"]
