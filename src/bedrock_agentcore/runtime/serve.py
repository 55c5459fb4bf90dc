"""Serving an app with uvicorn: where to listen, and a graceful, exit-0 shutdown on SIGTERM."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Mapping
from typing import Any

DEFAULT_PORT = 8080
GRACEFUL_SHUTDOWN_SECONDS = 30


def in_container(environ: Mapping[str, str] = os.environ) -> bool:
    """True inside Docker-like containers, where the agent must listen on every interface."""
    return os.path.exists("/.dockerenv") or bool(environ.get("DOCKER_CONTAINER"))


def resolve_host(host: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The explicit host, else 0.0.0.0 in a container, else loopback only."""
    if host is not None:
        return host
    return "0.0.0.0" if in_container(environ) else "127.0.0.1"


def resolve_port(port: int | None, environ: Mapping[str, str] = os.environ) -> int:
    """The explicit port, else `$PORT`, else 8080; a malformed `$PORT` is an error, not a surprise."""
    if port is not None:
        return port
    raw = environ.get("PORT")
    if raw is None or raw == "":
        return DEFAULT_PORT
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"PORT must be a port number, got {raw!r}") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"PORT must be between 0 and 65535, got {value}")
    return value


def serve(app: Any, host: str, port: int, debug: bool, **uvicorn_kwargs: Any) -> None:
    """Run uvicorn in the foreground until SIGINT/SIGTERM; in-flight requests get a bounded grace."""
    import uvicorn

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": debug,
        "log_level": "info" if debug else "warning",
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
    }
    options.update(uvicorn_kwargs)
    if options.get("reload") or options.get("workers"):
        # Reload and multi-process modes manage their own processes and signals.
        uvicorn.run(app, **options)
        return
    server = uvicorn.Server(uvicorn.Config(app, **options))
    # uvicorn re-raises the signal it caught once it has shut down; with the default SIGTERM
    # disposition that would kill the process (exit 143) after a clean drain. A no-op handler
    # in place while it runs turns that into a normal return, so the process exits 0.
    if threading.current_thread() is not threading.main_thread():
        server.run()
        return
    previous = signal.signal(signal.SIGTERM, _ignore_signal)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _ignore_signal(signum: int, frame: Any) -> None:
    return None


__all__ = ["DEFAULT_PORT", "in_container", "resolve_host", "resolve_port", "serve"]
