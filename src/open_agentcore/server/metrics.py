"""`/metrics`: GetMetrics, SigV4-authenticated like every operation, and the same exposition on a
separate unauthenticated listener (`--metrics-port`) for Prometheus scrapers.

The listener serves `GET /metrics` and nothing else. It binds loopback unless told otherwise:
anyone who reaches it reads runtime ids and traffic figures, so it belongs on a network only
scrapers can reach (see docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from open_agentcore.metrics import ServerMetrics

from .errors import NotFound

PATH = "/metrics"
_START_TIMEOUT = 10.0


class MetricsOff(NotFound):
    """The server runs without metrics (`--no-metrics`)."""


async def get_metrics(request: Request) -> Response:
    """GetMetrics: the server's metrics, in OpenMetrics when the Accept header asks for it."""
    metrics: ServerMetrics | None = request.app.state.metrics
    if metrics is None:
        raise MetricsOff("this server runs without metrics (agentcore server run --no-metrics)")
    return await _exposition(metrics, request.headers.get("accept"))


async def _exposition(metrics: ServerMetrics, accept: str | None) -> Response:
    body, content_type = await metrics.scrape(accept)
    return Response(body, headers={"content-type": content_type})


class ExpositionApp:
    """The metrics listener's ASGI app: `GET /metrics`, and 404 or 405 for anything else."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        response: Response
        if scope["path"] != PATH:
            response = PlainTextResponse("not found: this port serves GET /metrics only\n", status_code=404)
        elif scope["method"] not in ("GET", "HEAD"):
            response = PlainTextResponse("method not allowed: GET /metrics\n", status_code=405)
            response.headers["allow"] = "GET, HEAD"
        else:
            accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
            response = await _exposition(self.metrics, accept)
        await response(scope, receive, send)


class MetricsPortUnavailable(Exception):
    """The metrics listener cannot bind its address; the message says which and why."""


class _Listener(uvicorn.Server):
    """A uvicorn server that leaves signals to the main one: its lifespan stops this listener."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MetricsListener:
    """The separate metrics listener: its socket is bound when built (a busy port is reported at
    once), and it serves from `start()` to `stop()`, on the server's event loop."""

    def __init__(self, metrics: ServerMetrics, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            sock.close()
            reason = error.strerror or error
            raise MetricsPortUnavailable(f"--metrics-port {port} on {host}: {reason}") from None
        sock.set_inheritable(False)
        self.socket = sock
        self.host = host
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            ExpositionApp(metrics), lifespan="off", log_config=None, access_log=False, log_level="warning"
        )
        self._server = _Listener(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve until `stop()`."""
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[self.socket]))
        deadline = asyncio.get_running_loop().time() + _START_TIMEOUT
        while not self._server.started and not self._task.done():
            if asyncio.get_running_loop().time() > deadline:
                raise MetricsPortUnavailable(f"the metrics listener did not start within {_START_TIMEOUT:g}s")
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()

    async def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.socket.close()


__all__ = [
    "PATH",
    "ExpositionApp",
    "MetricsListener",
    "MetricsOff",
    "MetricsPortUnavailable",
    "get_metrics",
]
