"""`agentcore server run|start|stop|status|credentials`: the embedded runtime server."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from open_agentcore.auth.credentials import CredentialsError, load_admin_credential
from open_agentcore.server.config import LOG_LEVELS, ServerConfig, agentcore_home

from . import keys
from .endpoint import DEFAULT_PORT, ENDPOINT_ENV, RECORD_FILE, ServerRecord, read_record, start_command
from .errors import CliError
from .remote import pinned
from .tracing_flags import add_tracing_arguments, forwarded_tracing, tracing_options

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
    for name, handler, text, example in (
        ("stop", stop_server, "stop a background server (in-flight invocations may finish)",
         "agentcore server stop"),
        ("status", server_status, "say whether it runs, where, and how workers are sandboxed",
         "agentcore server status"),
        ("credentials", print_credentials,
         "print export lines for boto3, the AWS CLI and agentcore (keys, endpoint, region)",
         'eval "$(agentcore server credentials)"'),
    ):  # fmt: skip
        command = sub.add_parser(
            name,
            help=text,
            description=f"{text[0].upper()}{text[1:]}. The server is the one started from the data dir: "
            f"it recorded its address in {RECORD_FILE} there, whatever --port it was given.",
            epilog=f"example: {example}",
        )
        command.add_argument("--data-dir", type=Path, help="server data dir (default $AGENTCORE_HOME/server)")
        command.add_argument("--port", type=int, help="port of the server (default: as recorded, else 8900)")
        command.add_argument("--host", help="host of the server (default: as recorded, else 127.0.0.1)")
        command.set_defaults(handler=handler)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port to listen on (default 8900)")
    parser.add_argument("--data-dir", type=Path, help="state, code and logs (default $AGENTCORE_HOME/server)")
    parser.add_argument("--region", default="us-east-1", help="region in ARNs (default us-east-1)")
    parser.add_argument("--account-id", default="000000000000", help="account in ARNs (default 000000000000)")
    parser.add_argument("--backend", choices=["process", "ray"], default="process",
                        help="where workers run: process (this machine) or ray (a node of a Ray cluster "
                        "picked by Ray for the session's --session-cpus and --session-memory; needs the "
                        "[ray] extra; see docs/scale-out.md)")  # fmt: skip
    parser.add_argument("--ray-address", default="local", metavar="ADDRESS",
                        help="with --backend ray: local (a private Ray on this machine, default), auto "
                        "(the one `ray start` made here, or $RAY_ADDRESS), HOST:PORT of a head "
                        "(`ray start --head` prints it) or ray://HOST:PORT (Ray Client)")  # fmt: skip
    parser.add_argument("--ray-node-dir", type=Path, metavar="DIR",
                        help="with --backend ray: where each node caches code and environments and keeps "
                        "its workers' dirs, one subdir per node; must be the node user's own (default "
                        "~/.agentcore/ray-node of the user running each node)")  # fmt: skip
    parser.add_argument("--sandbox", choices=["auto", "bwrap", "gvisor", "none"], default="auto",
                        help="how workers are confined: bwrap (no capabilities, own user, mount, pid "
                        "namespaces, seccomp) refuses to start where that cannot be applied; auto uses "
                        "bwrap when it works here; gvisor runs each worker under runsc; none: plain "
                        "processes (trusted code only)")  # fmt: skip
    parser.add_argument("--session-start", choices=["fork", "fresh"], default="fork",
                        help="how a new session's worker starts: fork (forked from a per-version process "
                        "that imported the agent once, in tens of milliseconds, sharing memory between "
                        "sessions) or fresh (a new interpreter imports the agent, ~0.2-0.5 s). fork works "
                        "with --sandbox none, and with bwrap when the server runs as root with cgroups "
                        "(each forked session enters a sandbox of its own before its agent runs); "
                        "elsewhere (gvisor, bwrap not as root) sessions start fresh and their log says "
                        "why. An agent whose import starts threads or leaves files open starts fresh too. "
                        "What an agent's import makes (module globals, a random id) is copied into each "
                        "forked session: use fresh if an agent needs its own (default fork)")  # fmt: skip
    parser.add_argument("--session-memory", type=_size, default=8 * 1024**3, metavar="SIZE",
                        help="memory per session, e.g. 512M or 8G (default 8G); a session past it "
                        "ends with an out-of-memory reason")  # fmt: skip
    parser.add_argument("--stream-memory", type=_stream_size, default=256 * 1024, metavar="SIZE",
                        help="streamed output kept in memory per session for resuming; the rest "
                        "goes to disk (default 256K)")  # fmt: skip
    parser.add_argument("--stream-history", type=_stream_size, default=64 * 1024**2, metavar="SIZE",
                        help="streamed output kept per session for resuming, memory and disk; "
                        "the oldest is dropped past it (default 64M)")  # fmt: skip
    parser.add_argument("--session-cpus", type=_cpus, default=2.0, metavar="N",
                        help="CPUs per session, fractions allowed (default 2)")  # fmt: skip
    parser.add_argument("--session-pids", type=_positive, default=1024, metavar="N",
                        help="processes and threads per session (default 1024)")  # fmt: skip
    parser.add_argument("--session-network", choices=["default", "none"], default="default",
                        help="none: workers get no network at all (default: the host's)")  # fmt: skip
    parser.add_argument("--worker-uid-base", type=_positive, default=2_000_000_000, metavar="UID",
                        help="as root, each worker runs as its own host uid from here on "
                        "(default 2000000000; pick a range no real user has)")  # fmt: skip
    parser.add_argument("--shared-sessions", action="store_true",
                        help="let any caller use any session; by default a session belongs to the "
                        "principal (access key or token subject) that created it")  # fmt: skip
    parser.add_argument("--header-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                        help="drop clients that take longer to send a request head (default 10)")  # fmt: skip
    parser.add_argument("--body-timeout", type=_seconds, default=30.0, metavar="SECONDS",
                        help="drop clients whose request body stalls this long (default 30)")  # fmt: skip
    parser.add_argument("--max-connections", type=_positive, default=1000, metavar="N",
                        help="open connections at most; requests past it get 503 (default 1000)")  # fmt: skip
    parser.add_argument("--store", metavar="URL",
                        help="database URL (default SQLite in the data dir). postgresql://user@host/db is "
                             "shared by server replicas: it also keeps uploaded code, which each replica "
                             "fetches and builds on first use")  # fmt: skip
    parser.add_argument("--min-lifecycle-seconds", type=int, default=60,
                        help="smallest idle timeout / max lifetime allowed (default 60)")  # fmt: skip
    parser.add_argument("--max-sessions", type=int, default=200, help="live sessions at most (default 200)")
    parser.add_argument("--allow-host-python", action="store_true",
                        help="a version whose Python (runtime PYTHON_3_x) is not on this host runs on the "
                        "server's own, saying so in its status reason, instead of failing")  # fmt: skip
    parser.add_argument("--warm-pool", type=_count, default=1, metavar="N",
                        help="started workers kept ready per version, at least "
                        "(default 1; 0: no pool)")  # fmt: skip
    parser.add_argument("--warm-pool-max", type=_count, default=16, metavar="N",
                        help="a version's warm pool grows to its largest burst of new sessions (within one "
                        "worker start of each other) of the last minute, up to this many, while "
                        "--max-sessions and the host's free memory allow "
                        "(default 16)")  # fmt: skip
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this PEM certificate (chain)")
    parser.add_argument("--tls-key", type=Path, help="the PEM private key of --tls-cert (unencrypted)")
    parser.add_argument("--rate-limit", type=_rate, metavar="N/s",
                        help="requests per second per access key (per IP when unsigned), bursting to N; "
                        "default: no limit")  # fmt: skip
    parser.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="also serve GET /metrics WITHOUT authentication on this port, for Prometheus "
        "scrapers (GET /metrics on the main port is SigV4-signed and needs GetMetrics)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="interface of --metrics-port (default 127.0.0.1: anyone who reaches it reads "
        "runtime ids and traffic; see docs/metrics.md before exposing it)",
    )
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="count nothing and serve no metrics (GetMetrics answers 404)",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="warning",
                        help="server log detail (default warning; secrets are never logged)")  # fmt: skip
    add_tracing_arguments(parser)


def _rate(text: str) -> float:
    number = text.strip().removesuffix("/s")
    try:
        rate = float(number)
    except ValueError:
        rate = 0.0
    if not rate > 0 or rate == float("inf"):
        raise argparse.ArgumentTypeError(f"expected requests per second as N/s (e.g. 20/s), got {text!r}")
    return rate


_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _size(text: str, minimum: int = 16 * 1024**2) -> int:
    """Bytes from `512M`, `8G`, `8GiB` or a plain number of bytes."""
    cleaned = text.strip().lower().removesuffix("ib").removesuffix("b")
    unit = cleaned[-1:] if cleaned[-1:] in _UNITS else ""
    try:
        size = int(float(cleaned.removesuffix(unit)) * _UNITS[unit]) if cleaned else 0
    except ValueError:
        size = 0
    if size < minimum or (not minimum and not cleaned[:1].isdigit()):
        raise argparse.ArgumentTypeError(
            f"expected a size of at least {minimum // 1024**2}M, like 512M or 8G, got {text!r}"
            if minimum
            else f"expected a size like 256K or 64M, got {text!r}"
        )
    return size


def _stream_size(text: str) -> int:
    return _size(text, minimum=0)


def _cpus(text: str) -> float:
    try:
        cpus = float(text)
    except ValueError:
        cpus = 0.0
    if not 0.01 <= cpus <= 1024:
        raise argparse.ArgumentTypeError(f"expected a number of CPUs like 2 or 0.5, got {text!r}")
    return cpus


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, got {port}")
    return port


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    return seconds


def data_dir_of(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if args.data_dir else agentcore_home() / "server"


def config_of(args: argparse.Namespace) -> ServerConfig:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliError("--tls-cert and --tls-key go together")
    if args.metrics_port is not None and args.metrics_port == args.port:
        raise CliError(
            f"--metrics-port {args.metrics_port} is the server's own --port; give the metrics another"
        )
    return ServerConfig(
        data_dir=data_dir_of(args).resolve(),
        host=args.host,
        port=args.port,
        region=args.region,
        account_id=args.account_id,
        backend=args.backend,
        ray_address=args.ray_address,
        ray_node_dir=args.ray_node_dir,
        sandbox=args.sandbox,
        session_memory=args.session_memory,
        stream_memory=args.stream_memory,
        stream_history=args.stream_history,
        session_cpus=args.session_cpus,
        session_pids=args.session_pids,
        session_network=args.session_network,
        worker_uid_base=args.worker_uid_base,
        shared_sessions=args.shared_sessions,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        store_url=args.store,
        min_lifecycle_seconds=args.min_lifecycle_seconds,
        max_sessions=args.max_sessions,
        allow_host_python=args.allow_host_python,
        warm_pool=args.warm_pool,
        warm_pool_max=args.warm_pool_max,
        session_start=args.session_start,
        tls_cert=args.tls_cert.resolve() if args.tls_cert else None,
        tls_key=args.tls_key.resolve() if args.tls_key else None,
        rate_limit=args.rate_limit,
        log_level=args.log_level,
        metrics=not args.no_metrics,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        **tracing_options(args),
    )


def _check_tls(config: ServerConfig) -> None:
    from open_agentcore.server.tls import TlsError, check_tls_files

    if config.tls_cert is not None and config.tls_key is not None:
        try:
            check_tls_files(config.tls_cert, config.tls_key)
        except TlsError as error:
            raise CliError(str(error)) from None


def client_url(config: ServerConfig) -> str:
    """The URL a client on this machine uses: a wildcard listen address is reached on loopback."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(config.host, config.host)
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if config.tls_cert else 'http'}://{host}:{config.port}"


def _record(config: ServerConfig) -> ServerRecord:
    from open_agentcore.server.tls import is_self_signed

    cert = config.tls_cert
    return ServerRecord(
        url=client_url(config),
        pid=os.getpid(),
        data_dir=str(config.data_dir),
        host=config.host,
        port=config.port,
        tls_cert=str(cert) if cert else None,
        tls_key=str(config.tls_key) if config.tls_key else None,
        self_signed=is_self_signed(cert) if cert else False,
    )


def run_server(args: argparse.Namespace) -> int:
    import uvicorn

    from open_agentcore.backends import BackendUnavailable
    from open_agentcore.server.app import build_app
    from open_agentcore.server.metrics import MetricsPortUnavailable
    from open_agentcore.server.serving import uvicorn_config

    config = config_of(args)
    _check_tls(config)
    try:
        app = build_app(config)
    except (CredentialsError, BackendUnavailable, MetricsPortUnavailable) as error:
        raise CliError(str(error)) from None
    record = _record(config)
    record.save()
    print(f"open-agentcore runtime server on {config.url} (data: {config.data_dir})", flush=True)
    server = uvicorn.Server(uvicorn_config(app, config, timeout_graceful_shutdown=20))
    # A clean drain on SIGTERM should end with exit 0, not with the re-raised signal.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()
    finally:
        # The record stays: a stopped server is still "my server", and hints start it where it was.
        signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else 1


def _health(url: str, timeout: float = 2.0, context: ssl.SSLContext | None = None) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(  # noqa: S310 - http(s) URLs we build
            url + "/_agentcore/health", timeout=timeout, context=context
        ) as reply:
            body: dict[str, Any] = json.load(reply)
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _context(record: ServerRecord | None) -> ssl.SSLContext | None:
    return pinned(record.tls_cert) if record is not None and record.tls_cert else None


def _pid(data_dir: Path) -> int | None:
    record = read_record(data_dir)
    if record is not None and record.alive():
        return record.pid
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start_server(args: argparse.Namespace) -> int:
    config = config_of(args)
    _check_tls(config)
    context = pinned(str(config.tls_cert)) if config.tls_cert else None
    url = client_url(config)
    if _health(url, context=context) is not None:
        raise CliError(f"a runtime server already answers on {url}")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    running = read_record(config.data_dir)
    if running is not None and running.alive() and _health(running.url, context=_context(running)):
        raise CliError(
            f"a runtime server from {config.data_dir} already runs at {running.url} (pid {running.pid}): "
            "stop it first (agentcore server stop), or give this one its own --data-dir"
        )
    log_path = config.data_dir / LOG_FILE
    command = [sys.executable, "-m", "open_agentcore.cli", "server", "run", *_forwarded(args, config)]
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    (config.data_dir / PID_FILE).write_text(str(process.pid))
    deadline = time.monotonic() + START_TIMEOUT
    while _health(url, timeout=1, context=context) is None:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise CliError(f"the server exited with code {process.returncode}: {tail[0]} (log: {log_path})")
        if time.monotonic() > deadline:
            raise CliError(f"the server did not become healthy within {START_TIMEOUT:g}s (log: {log_path})")
        time.sleep(0.1)
    print(f"runtime server running at {url} (pid {process.pid}, log {log_path})")
    where = (
        "" if config.data_dir == (agentcore_home() / "server").resolve() else f" --data-dir {config.data_dir}"
    )
    print(f'next: eval "$(agentcore server credentials{where})"')
    return 0


def _forwarded(args: argparse.Namespace, config: ServerConfig) -> list[str]:
    options = [
        "--host", config.host, "--port", str(config.port), "--data-dir", str(config.data_dir),
        "--region", config.region, "--account-id", config.account_id, "--backend", config.backend,
        "--sandbox", config.sandbox, "--min-lifecycle-seconds", str(config.min_lifecycle_seconds),
        "--max-sessions", str(config.max_sessions), "--warm-pool", str(config.warm_pool),
        "--warm-pool-max", str(config.warm_pool_max), "--session-start", config.session_start,
        "--log-level", config.log_level, "--session-memory", str(config.session_memory),
        "--session-cpus", repr(config.session_cpus), "--session-pids", str(config.session_pids),
        "--session-network", config.session_network, "--worker-uid-base", str(config.worker_uid_base),
        "--header-timeout", repr(config.header_timeout), "--body-timeout", repr(config.body_timeout),
        "--max-connections", str(config.max_connections), "--stream-memory", str(config.stream_memory),
        "--stream-history", str(config.stream_history),
    ]  # fmt: skip
    if config.shared_sessions:
        options.append("--shared-sessions")
    if config.allow_host_python:
        options.append("--allow-host-python")
    if config.tls_cert and config.tls_key:
        options += ["--tls-cert", str(config.tls_cert), "--tls-key", str(config.tls_key)]
    if config.rate_limit:
        options += ["--rate-limit", f"{config.rate_limit!r}/s"]
    if not config.metrics:
        options.append("--no-metrics")
    if config.metrics_port is not None:
        options += ["--metrics-port", str(config.metrics_port), "--metrics-host", config.metrics_host]
    options += forwarded_tracing(config)
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


def _target(args: argparse.Namespace) -> tuple[str, ServerRecord | None]:
    """The server these flags mean: the data dir's record, with --host/--port overriding it."""
    record = read_record(data_dir_of(args))
    if record is not None and args.host is None and args.port in (None, record.port):
        return record.url, record
    host = args.host or (record.host if record else "127.0.0.1")
    port = args.port or (record.port if record else DEFAULT_PORT)
    scheme = "https" if record is not None and record.tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}", record


def server_status(args: argparse.Namespace) -> int:
    url, record = _target(args)
    health = _health(url, context=_context(record))
    if health is None:
        data_dir = data_dir_of(args)
        if record is not None and record.url == url:
            start = record.start_command()
        else:
            port = int(url.rsplit(":", 1)[1])
            start = start_command(args.host or "127.0.0.1", port, data_dir)
        print(f"no runtime server answers on {url} (start it: {start})")
        return 1
    pid = _pid(data_dir_of(args))
    print(f"runtime server running at {url}" + (f" (pid {pid})" if pid else ""))
    print(f"  version {health['version']}, backend {health['backend']}, sandbox {health['sandbox']}")
    print(f"  live sessions: {health['sessions']}")
    if isinstance(cluster := health.get("cluster"), dict):
        print(f"  {_cluster_line(cluster)}")
    for line in _protection_lines(health.get("protections") or {}):
        print(f"  {line}")
    return 0


def _cluster_line(cluster: dict[str, Any]) -> str:
    """Whether the server reaches its Ray head (from the health answer's `cluster`)."""
    if cluster.get("reachable"):
        return f"Ray head {cluster.get('address')}: reachable"
    since, reason = cluster.get("since"), cluster.get("reason")
    return (
        f"Ray head {cluster.get('address')}: UNREACHABLE since {since} ({reason}); "
        "new sessions are refused until it is back"
    )


def _protection_lines(protections: dict[str, Any]) -> list[str]:
    """What confines each worker, one line per protection (from the server's health answer)."""
    lines = []
    for name, value in protections.items():
        if name == "limits" and isinstance(value, dict):
            mode = value.get("mode", "?")
            for resource in ("memory", "cpu", "pids"):
                if resource in value:
                    lines.append(f"limit {resource}: {value[resource]}")
            lines.append(
                f"limits enforced with: {mode}" + (f" ({value['reason']})" if value.get("reason") else "")
            )
        elif isinstance(value, list):
            lines.append(f"{name}: {', '.join(str(item) for item in value) or 'none'}")
        elif isinstance(value, bool):
            lines.append(f"{name}: {'yes' if value else 'no'}")
        else:
            lines.append(f"{name}: {value}")
    return lines


def print_credentials(args: argparse.Namespace) -> int:
    """Every variable boto3, the AWS CLI and agentcore read, for the server of this data dir."""
    try:
        credential = load_admin_credential(data_dir_of(args), os.environ)
    except CredentialsError as error:
        raise CliError(str(error)) from None
    url, record = _target(args)
    print(f"export AWS_ACCESS_KEY_ID={credential.access_key_id}")
    print(f"export AWS_SECRET_ACCESS_KEY={credential.secret_access_key}")
    # AWS_ENDPOINT_URL: boto3 and the AWS CLI; AGENTCORE_ENDPOINT_URL: agentcore (it wins there).
    print(f"export AWS_ENDPOINT_URL={url}")
    print(f"export {ENDPOINT_ENV}={url}")
    # botocore reads AWS_DEFAULT_REGION; AWS_REGION is for the other SDKs and our client.
    print("export AWS_REGION=us-east-1")
    print("export AWS_DEFAULT_REGION=us-east-1")
    if record is not None and record.tls_cert:
        if record.self_signed:
            print(f"export AWS_CA_BUNDLE={shlex.quote(record.tls_cert)}")
            print(f"export AGENTCORE_CA_BUNDLE={shlex.quote(record.tls_cert)}")
        else:
            print(
                f"note: {record.tls_cert} is CA-issued: clients check it against the system's CAs; if its "
                "CA is not among them, set AWS_CA_BUNDLE and AGENTCORE_CA_BUNDLE to the CA's certificate",
                file=sys.stderr,
            )
    return 0


__all__ = ["add_commands"]
