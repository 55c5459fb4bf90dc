"""`agentcore server run|start|stop|status|credentials`: the embedded runtime server."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from open_agentcore.auth import CredentialsError, load_admin_credential
from open_agentcore.server import ServerConfig, agentcore_home

from . import keys
from .errors import CliError

PID_FILE = "server.pid"
LOG_FILE = "server.log"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def add_commands(commands: Any) -> None:
    """Register `server` and its subcommands on the top-level parser."""
    server = commands.add_parser(
        "server",
        help="run the embedded runtime server",
        description="The runtime server hosts deployed agents, one worker per session, and speaks "
        "AgentCore's REST protocol: boto3 works against it with only endpoint_url changed.",
        epilog='example: agentcore server start && eval "$(agentcore server credentials)"',
    )
    sub = server.add_subparsers(dest="server_command", required=True, metavar="COMMAND")
    keys.add_commands(sub)
    run = sub.add_parser("run", help="run in the foreground (Ctrl-C stops it)")
    _add_options(run)
    run.set_defaults(handler=run_server)
    start = sub.add_parser("start", help="start in the background and wait until it is healthy")
    _add_options(start)
    start.set_defaults(handler=start_server)
    for name, handler, text in (
        ("stop", stop_server, "stop a background server (in-flight invocations may finish)"),
        ("status", server_status, "say whether it runs, where, and how workers are sandboxed"),
        ("credentials", print_credentials, "print export lines for boto3 and the CLI"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--data-dir", type=Path, help="server data dir (default $AGENTCORE_HOME/server)")
        command.add_argument("--port", type=int, default=8900, help="port of the server (default 8900)")
        command.add_argument("--host", default="127.0.0.1", help="host of the server (default 127.0.0.1)")
        command.set_defaults(handler=handler)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port to listen on (default 8900)")
    parser.add_argument("--data-dir", type=Path, help="state, code and logs (default $AGENTCORE_HOME/server)")
    parser.add_argument("--region", default="us-east-1", help="region in ARNs (default us-east-1)")
    parser.add_argument("--account-id", default="000000000000", help="account in ARNs (default 000000000000)")
    parser.add_argument("--backend", choices=["process"], default="process", help="where workers run")
    parser.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                        help="isolate workers with bubblewrap: auto uses it when installed")  # fmt: skip
    parser.add_argument("--store", help="database URL (default SQLite in the data dir; postgresql://...)")
    parser.add_argument("--min-lifecycle-seconds", type=int, default=60,
                        help="smallest idle timeout / max lifetime allowed (default 60)")  # fmt: skip
    parser.add_argument("--max-sessions", type=int, default=200, help="live sessions at most (default 200)")
    parser.add_argument("--warm-pool", type=int, default=1, help="started workers kept ready per version")


def data_dir_of(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if args.data_dir else agentcore_home() / "server"


def config_of(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        data_dir=data_dir_of(args).resolve(),
        host=args.host,
        port=args.port,
        region=args.region,
        account_id=args.account_id,
        backend=args.backend,
        sandbox=args.sandbox,
        store_url=args.store,
        min_lifecycle_seconds=args.min_lifecycle_seconds,
        max_sessions=args.max_sessions,
        warm_pool=args.warm_pool,
    )


def run_server(args: argparse.Namespace) -> int:
    import uvicorn

    from open_agentcore.server import build_app

    config = config_of(args)
    try:
        app = build_app(config)
    except CredentialsError as error:
        raise CliError(str(error)) from None
    print(f"open-agentcore runtime server on {config.url} (data: {config.data_dir})", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=config.host, port=config.port, log_level="warning", timeout_graceful_shutdown=20
        )
    )
    # A clean drain on SIGTERM should end with exit 0, not with the re-raised signal.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else 1


def _health(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url + "/_agentcore/health", timeout=timeout) as reply:  # noqa: S310
            body: dict[str, Any] = json.load(reply)
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start_server(args: argparse.Namespace) -> int:
    config = config_of(args)
    if _health(config.url) is not None:
        raise CliError(f"a runtime server already answers on {config.url}")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    log_path = config.data_dir / LOG_FILE
    command = [sys.executable, "-m", "open_agentcore.cli", "server", "run", *_forwarded(args, config)]
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    (config.data_dir / PID_FILE).write_text(str(process.pid))
    deadline = time.monotonic() + START_TIMEOUT
    while _health(config.url, timeout=1) is None:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise CliError(f"the server exited with code {process.returncode}: {tail[0]} (log: {log_path})")
        if time.monotonic() > deadline:
            raise CliError(f"the server did not become healthy within {START_TIMEOUT:g}s (log: {log_path})")
        time.sleep(0.1)
    print(f"runtime server running at {config.url} (pid {process.pid}, log {log_path})")
    print('next: eval "$(agentcore server credentials)"')
    return 0


def _forwarded(args: argparse.Namespace, config: ServerConfig) -> list[str]:
    options = [
        "--host", config.host, "--port", str(config.port), "--data-dir", str(config.data_dir),
        "--region", config.region, "--account-id", config.account_id, "--backend", config.backend,
        "--sandbox", config.sandbox, "--min-lifecycle-seconds", str(config.min_lifecycle_seconds),
        "--max-sessions", str(config.max_sessions), "--warm-pool", str(config.warm_pool),
    ]  # fmt: skip
    return [*options, "--store", args.store] if args.store else options


def stop_server(args: argparse.Namespace) -> int:
    data_dir = data_dir_of(args)
    pid = _pid(data_dir)
    if pid is None:
        raise CliError(f"no runtime server is running from {data_dir}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _pid(data_dir) is not None:
        if time.monotonic() > deadline:
            raise CliError(f"the server (pid {pid}) did not stop within {STOP_TIMEOUT:g}s")
        time.sleep(0.1)
    (data_dir / PID_FILE).unlink(missing_ok=True)
    print(f"runtime server stopped (pid {pid})")
    return 0


def server_status(args: argparse.Namespace) -> int:
    url = f"http://{args.host}:{args.port}"
    health = _health(url)
    if health is None:
        print(f"no runtime server answers on {url}")
        return 1
    pid = _pid(data_dir_of(args))
    print(f"runtime server running at {url}" + (f" (pid {pid})" if pid else ""))
    print(f"  version {health['version']}, backend {health['backend']}, sandbox {health['sandbox']}")
    print(f"  live sessions: {health['sessions']}")
    return 0


def print_credentials(args: argparse.Namespace) -> int:
    try:
        credential = load_admin_credential(data_dir_of(args), os.environ)
    except CredentialsError as error:
        raise CliError(str(error)) from None
    print(f"export AWS_ACCESS_KEY_ID={credential.access_key_id}")
    print(f"export AWS_SECRET_ACCESS_KEY={credential.secret_access_key}")
    print(f"export AWS_ENDPOINT_URL=http://{args.host}:{args.port}")
    # botocore reads AWS_DEFAULT_REGION; AWS_REGION is for the other SDKs and our client.
    print("export AWS_REGION=us-east-1")
    print("export AWS_DEFAULT_REGION=us-east-1")
    return 0


__all__ = ["add_commands"]
