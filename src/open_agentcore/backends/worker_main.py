"""The worker launcher: serve one agent's ASGI app on a unix socket (or a TCP port, for local mode).

Run BY PATH with the worker environment's python:
    python worker_main.py --code-dir DIR --entrypoint agent.py --socket /path/worker.sock
    python worker_main.py --code-dir DIR --entrypoint agent.py --socket-fd 3  (a listening socket)
    python worker_main.py --code-dir DIR --entrypoint agent.py --bind-socket /path/worker.sock
    python worker_main.py --code-dir DIR --entrypoint agent.py --port 8080 [--host 127.0.0.1]
That environment has the agent SDK and uvicorn but not open_agentcore, so this file imports only
the standard library and uvicorn. The entrypoint is imported as a module named after its file,
never as `__main__`, so an `if __name__ == "__main__": app.run()` guard does not fire.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

EXIT_START_FAILED = 3
_APP_CLASSES = {"BedrockAgentCoreApp", "Starlette", "FastAPI"}


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
        "--die-with-parent",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop when the starting process dies (--no-die-with-parent: a detached local agent)",
    )
    args = parser.parse_args(argv)
    if args.die_with_parent:
        die_with_parent()
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
    import uvicorn

    listen: dict[str, Any]
    if listener is not None:
        listen = {"fd": listener.fileno()}
    elif args.socket_fd is not None:
        listen = {"fd": args.socket_fd}
    elif args.socket:
        listen = {"uds": args.socket}
    else:
        listen = {"host": args.host, "port": args.port}
    config = uvicorn.Config(
        app,
        **listen,
        log_level="warning",
        lifespan="auto",
        timeout_graceful_shutdown=args.graceful_seconds,
    )
    # uvicorn re-raises the signal it stopped on; a no-op handler underneath makes that a clean exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
