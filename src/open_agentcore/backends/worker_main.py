"""The worker launcher: serve one agent's ASGI app on a unix socket (or a TCP port, for local mode).

Run BY PATH with the worker environment's python:
    python worker_main.py --code-dir DIR --entrypoint agent.py --socket /path/worker.sock
    python worker_main.py --code-dir DIR --entrypoint agent.py --socket-fd 3  (a listening socket)
    python worker_main.py --code-dir DIR --entrypoint agent.py --bind-socket /path/worker.sock
    python worker_main.py --code-dir DIR --entrypoint agent.py --port 8080 [--host 127.0.0.1]
That environment has the agent SDK and uvicorn but not open_agentcore, so this file imports only
the standard library and uvicorn. The entrypoint is imported as a module named after its file,
never as `__main__`, so an `if __name__ == "__main__": app.run()` guard does not fire.

A worker the Ray backend starts listens on TCP, where anyone on the network may knock: given
`--secret-fd`, it reads a per-worker secret from that descriptor (never from argv, which every
process on the host may read) and refuses with 403 every HTTP request and WebSocket that does not
carry it in `x-agentcore-worker-secret`, `/ping` included, before the agent sees anything.

On a unix socket (the runtime server's workers) the app is wrapped in `Cancellable`, which adds
`POST /_agentcore/requests/{request_id}/cancel`: only the server reaches that socket, and it never
sends a caller's path there, so callers cancel through the server's own route, which checks them.
"""

from __future__ import annotations

import _thread
import argparse
import asyncio
import ctypes
import hmac
import importlib.util
import inspect
import json
import os
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

EXIT_START_FAILED = 3
_APP_CLASSES = {"BedrockAgentCoreApp", "Starlette", "FastAPI"}
_REQUEST_ID = b"x-amzn-bedrock-agentcore-runtime-request-id"
_CANCEL_PREFIX, _CANCEL_SUFFIX = "/_agentcore/requests/", "/cancel"
_SYNC_HANDLER = (
    "the agent's entrypoint is a sync function: it runs in a thread, which Python cannot interrupt, so it "
    "runs to its end; make it `async def` to be able to cancel it"
)
CANCELLED_STATUS = 499  # the answer of a call cancelled before it answered (nginx's "client closed")
SECRET_HEADER = b"x-agentcore-worker-secret"
_SECRET_LIMIT = 4096


class LaunchError(Exception):
    """The agent cannot be served; the message says why in one line."""


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the server that started us dies (no orphan workers)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def entrypoint_path(code_dir: Path, entrypoint: str) -> Path:
    """The entrypoint file, which must lie inside the code dir once every link is followed."""
    root = code_dir.resolve()
    relative = Path(entrypoint)
    if relative.is_absolute() or ".." in relative.parts:
        raise LaunchError(f"entrypoint {entrypoint!r} must be a path inside the code dir")
    path = (root / relative).resolve()
    if root not in path.parents:
        raise LaunchError(f"entrypoint {entrypoint!r} leads outside the code dir")
    if not path.is_file():
        raise LaunchError(f"entrypoint {entrypoint!r} not found in {code_dir}")
    return path


def load_entrypoint(code_dir: Path, entrypoint: str) -> Any:
    """Import the entrypoint file as a module named after it, with the code dir on sys.path."""
    path = entrypoint_path(code_dir, entrypoint)
    sys.path.insert(0, str(path.parent))
    if path.parent != code_dir.resolve():
        sys.path.insert(1, str(code_dir.resolve()))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise LaunchError(f"cannot import {entrypoint!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def find_app(module: Any) -> Any:
    """The module's ASGI app: a callable global `app`, else its one Starlette-like instance."""
    app = getattr(module, "app", None)
    if app is not None and callable(app):
        return app
    found = [
        value
        for value in vars(module).values()
        if any(cls.__name__ in _APP_CLASSES for cls in type(value).__mro__)
    ]
    if len(found) == 1:
        return found[0]
    if not found:
        raise LaunchError(f"{module.__name__} defines no ASGI app (expected `app = BedrockAgentCoreApp()`)")
    raise LaunchError(f"{module.__name__} defines {len(found)} apps; name the one to serve `app`")


class _Invocation:
    """One call in flight: its task, and what of its answer has gone out."""

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.cancelled = False
        self.started = False
        self.complete = False
        self.event_stream = False


class Cancellable:
    """ASGI middleware: calls that carry a request id can be cancelled by id, mid-answer or not.

    The call's task is cancelled, so an async handler gets `CancelledError` at its next `await`;
    its answer then ends as a cancelled one (status 499 before it began, a last error event in an
    event stream, else the end of the body). A sync handler runs in a thread, which Python cannot
    interrupt: cancelling one is refused with 409, and it runs to its end.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.running: dict[str, _Invocation] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(_CANCEL_PREFIX) and path.endswith(_CANCEL_SUFFIX) and scope["method"] == "POST":
            await self._cancel(path[len(_CANCEL_PREFIX) : -len(_CANCEL_SUFFIX)], send)
            return
        request_id = next(
            (value.decode("latin-1") for name, value in scope["headers"] if name == _REQUEST_ID), None
        )
        task = asyncio.current_task()
        if request_id is None or task is None:
            await self.app(scope, receive, send)
            return
        call = self.running[request_id] = _Invocation(task)

        async def watched(message: Any) -> None:
            if message["type"] == "http.response.start":
                call.started = True
                # No dict of every header per answer: one look for the one that matters.
                content_type = next((v for n, v in message.get("headers", ()) if n == b"content-type"), b"")
                call.event_stream = content_type.startswith(b"text/event-stream")
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                call.complete = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except asyncio.CancelledError:
            if not call.cancelled:
                raise
            uncancel = getattr(task, "uncancel", None)  # Python 3.11+: this cancellation is handled
            if uncancel is not None:
                uncancel()
            await _end_cancelled(call, request_id, send)
        finally:
            if self.running.get(request_id) is call:
                del self.running[request_id]

    async def _cancel(self, request_id: str, send: Any) -> None:
        call = self.running.get(request_id)
        if call is None or call.task.done():
            await _answer(send, 404, {"error": f"no invocation {request_id!r} is in flight in this session"})
            return
        if not _interruptible(self.app):
            await _answer(send, 409, {"error": _SYNC_HANDLER})
            return
        call.cancelled = True
        call.task.cancel()
        await _answer(send, 200, {"requestId": request_id, "status": "CANCELLED"})


def _interruptible(app: Any) -> bool:
    """False when the app's entrypoint is known to be a sync function (ours or the reference SDK's)."""
    handler = getattr(app, "entrypoint_handler", None)
    kind = getattr(getattr(handler, "kind", None), "value", None)
    if isinstance(kind, str):
        return kind != "sync"
    handlers = getattr(app, "handlers", None)
    func = handlers.get("main") if isinstance(handlers, dict) else None
    if func is None:
        return True  # another ASGI app: its request task is what there is to cancel
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


async def _end_cancelled(call: _Invocation, request_id: str, send: Any) -> None:
    if call.complete:
        return
    error = {"error": "the invocation was cancelled", "error_type": "CancelledError", "requestId": request_id}
    if not call.started:
        await _answer(send, CANCELLED_STATUS, error)
        return
    if call.event_stream:
        frame = {**error, "message": "The invocation was cancelled; the stream ends here."}
        await send({"type": "http.response.body", "body": b"data: " + json.dumps(frame).encode() + b"\n\n",
                    "more_body": True})  # fmt: skip
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    content = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content, "more_body": False})


class SecretGate:
    """ASGI middleware: only requests carrying this worker's secret reach the app.

    Compared in constant time; anything else (no header, another worker's secret, a forged one,
    twice the header) gets 403 on HTTP and a refused handshake on WebSockets. The header is
    removed before the app sees the request, so the agent never logs it by accident.
    """

    def __init__(self, app: Any, secret: bytes) -> None:
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        given = [value for name, value in scope["headers"] if name == SECRET_HEADER]
        if len(given) != 1 or not hmac.compare_digest(given[0], self.secret):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
                return
            await _answer(send, 403, {"error": "this worker answers only its runtime server"})
            return
        scope = {**scope, "headers": [(n, v) for n, v in scope["headers"] if n != SECRET_HEADER]}
        await self.app(scope, receive, send)


def read_secret(fd: int) -> bytes:
    """The worker's secret, read whole from `fd` (a pipe whose writer has closed), which is closed."""
    chunks = []
    try:
        while chunk := os.read(fd, _SECRET_LIMIT):
            chunks.append(chunk)
    finally:
        os.close(fd)
    secret = b"".join(chunks).strip()
    if not secret:
        raise LaunchError("--secret-fd gave an empty secret")
    return secret


def bind_socket(path: str) -> socket.socket:
    """A unix socket listening at `path`, which must not exist yet.

    For gVisor workers, which must make their own socket: there a socket cannot be chmod-ed (as
    uvicorn's `uds=` does), and binding before the agent is imported lets the server find it early
    while its first ping waits in the backlog.
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(128)
    except BaseException:
        listener.close()
        raise
    return listener


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve an agent's ASGI app on a unix socket or a TCP port.")
    parser.add_argument("--code-dir", type=Path, required=True)
    parser.add_argument("--entrypoint", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="unix socket path to listen on")
    where.add_argument("--socket-fd", type=int, help="a listening unix socket (the runtime server's workers)")
    where.add_argument("--bind-socket", help="unix socket path to make and listen on first (gVisor workers)")
    where.add_argument("--port", type=int, help="TCP port on --host (the CLI's local mode)")
    parser.add_argument("--host", default="127.0.0.1", help="with --port: the interface (default 127.0.0.1)")
    parser.add_argument("--graceful-seconds", type=float, default=10.0)
    parser.add_argument("--worker-id", help="the runtime server's name for this worker (finds orphans)")
    parser.add_argument(
        "--secret-fd", type=int, help="read the secret every request must carry from this descriptor"
    )
    parser.add_argument(
        "--die-with-parent",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop when the starting process dies (--no-die-with-parent: a detached local agent)",
    )
    args = parser.parse_args(argv)
    if args.die_with_parent:
        die_with_parent()
    secret: bytes | None = None
    if args.secret_fd is not None:
        # Before the agent's code is imported: it never finds the descriptor open.
        try:
            secret = read_secret(args.secret_fd)
        except (OSError, LaunchError) as error:
            print(f"agent failed to start: cannot read the worker secret: {error}", file=sys.stderr)
            return EXIT_START_FAILED
    listener: socket.socket | None = None
    if args.bind_socket:
        try:
            listener = bind_socket(args.bind_socket)
        except OSError as error:
            print(f"agent failed to start: cannot listen on {args.bind_socket}: {error}", file=sys.stderr)
            return EXIT_START_FAILED
    try:
        app = find_app(load_entrypoint(args.code_dir, args.entrypoint))
    except LaunchError as error:
        print(f"agent failed to start: {error}", file=sys.stderr, flush=True)
        return EXIT_START_FAILED
    except BaseException as error:  # the agent's own import-time failure, whatever it is
        print(f"agent failed to start: {type(error).__name__}: {error}", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        return EXIT_START_FAILED
    listen: dict[str, Any]
    if listener is not None:
        listen = {"fd": listener.fileno()}
    elif args.socket_fd is not None:
        listen = {"fd": args.socket_fd}
    elif args.socket:
        listen = {"uds": args.socket}
    else:
        listen = {"host": args.host, "port": args.port}
    serve(app, listen, args.graceful_seconds, secret)
    return 0


def serve(app: Any, listen: dict[str, Any], graceful_seconds: int, secret: bytes | None = None) -> None:
    """Serve `app` with uvicorn where `listen` says (uvicorn's `fd`, `uds` or `host`/`port`) until
    SIGTERM; with `secret`, only to requests that carry it. A worker started for the warm pool
    (no session yet) prepares its first call before it listens: nobody waits for it to be ready,
    and preparing afterwards would take the CPU its first session's call needs (all of it, under a
    session's small CPU quota)."""
    pooled = os.environ.get("AGENTCORE_SESSION_ID") == ""
    run(server_config(app, listen, graceful_seconds, secret), pooled=pooled)


def server_config(
    app: Any, listen: dict[str, Any], graceful_seconds: int, secret: bytes | None = None
) -> Any:
    """uvicorn's config for serving `app` (the fork server loads one once, for all its children)."""
    import uvicorn

    if "port" not in listen:
        app = Cancellable(app)  # on the server's private socket only: see the module docstring
    if secret is not None:
        app = SecretGate(app, secret)  # outermost: nothing else of the worker answers without it
    return uvicorn.Config(
        app,
        **listen,
        log_level="warning",
        lifespan="auto",
        timeout_graceful_shutdown=graceful_seconds,
    )


def run(config: Any, lifeline: int | None = None, preloaded: bool = False, pooled: bool = False) -> None:
    """Serve with uvicorn's `config` until SIGTERM, or until `lifeline` (the read end of a pipe only
    the runtime server writes: a forked worker's) reaches its end, i.e. the server is gone.

    What the first call would wait for (tracing set up, the handler's thread or loop started) is
    prepared on a thread of its own: at once when `preloaded` (a forked worker, whose fork server
    imported the OpenTelemetry SDK: a few milliseconds, alongside uvicorn's start-up and the
    server's own work before the first call), else once listening (a fresh worker's import of the
    SDK would otherwise hold up its first ping, the server's sign that it is ready), or before
    listening when `pooled` (a fresh warm-pool worker: see `serve`). A bare thread:
    `threading.Thread.start` would wait for it to be scheduled."""
    # uvicorn re-raises the signal it stopped on; a no-op handler underneath makes that a clean exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    if preloaded:
        _thread.start_new_thread(_prepare_first_call, (config.app,))
    elif pooled:
        _prepare_first_call(config.app)
    _server(config, lifeline, prepare=not (preloaded or pooled)).run()


def _server(config: Any, lifeline: int | None, prepare: bool) -> Any:
    """A uvicorn server that, once listening, watches the lifeline and (`prepare`) prepares the
    first call."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if lifeline is not None:
                # On the loop, not a thread of its own: starting one waits for the scheduler, which
                # on a loaded host delays the first ping by milliseconds.
                asyncio.get_running_loop().add_reader(lifeline, _stop_with_server, lifeline)
            if prepare:
                _thread.start_new_thread(_prepare_first_call, (config.app,))

    return Server(config)


def _stop_with_server(lifeline: int) -> None:
    """The lifeline is readable: nothing is ever written to it, so the server is gone. Stop as on
    SIGTERM (gracefully)."""
    asyncio.get_running_loop().remove_reader(lifeline)
    os.kill(os.getpid(), signal.SIGTERM)


def _tracing() -> Any:
    """Our SDK's invocation tracing, or None (no OpenTelemetry, or an agent on Amazon's SDK, whose
    module of that name has no `TRACING`)."""
    module = sys.modules.get("bedrock_agentcore.runtime.tracing")
    return getattr(module, "TRACING", None)


def preload_tracing() -> None:
    """Import what the workers' tracing set-up needs, installing nothing and starting no thread:
    for a process that will fork workers (each then sets up in milliseconds)."""
    preload = getattr(_tracing(), "preload", None)
    if callable(preload):
        preload()


def _prepare_first_call(app: Any) -> None:
    """What a worker's first call would otherwise wait for: its tracing set up, and (our SDK's
    app) a thread or loop for its handler started."""
    _prepare_tracing()
    while not hasattr(app, "warm_up") and hasattr(app, "app"):  # under Cancellable, SecretGate
        app = app.app
    warm_up = getattr(app, "warm_up", None)
    if callable(warm_up):
        try:
            warm_up()
        except Exception:  # a thread's end: say why; the first call starts what it needs itself
            traceback.print_exc()


def _prepare_tracing() -> None:
    """An agent on our SDK exports its spans where its environment says: set that up before the
    first call rather than during it (unless preloaded, it imports the OpenTelemetry SDK, tens of
    milliseconds)."""
    prepare = getattr(_tracing(), "prepare", None)
    if callable(prepare):
        try:
            prepare()
        except Exception:  # a thread's end: say why; the first call tries again and answers for it
            traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
