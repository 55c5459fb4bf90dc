"""The server's configuration: one typed object, built once from flags and environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warning", "error")  # not uvicorn's "trace": it logs raw ASGI scopes


def agentcore_home(environ: Mapping[str, str] = os.environ) -> Path:
    """`$AGENTCORE_HOME`, else `~/.agentcore`."""
    return Path(environ.get("AGENTCORE_HOME") or Path.home() / ".agentcore")


@dataclass(frozen=True)
class ServerConfig:
    """Everything `agentcore server run` can be told."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8900
    region: str = "us-east-1"
    account_id: str = "000000000000"
    backend: str = "process"
    # --backend ray: the cluster (`local`, `auto`, `host:port`, `ray://host:port`) and each node's
    # cache dir (None: ~/.agentcore/ray-node of the user running the node).
    ray_address: str = "local"
    ray_node_dir: Path | None = None
    # How workers are confined: "auto" (bubblewrap when it works here), "bwrap", "gvisor" or "none".
    sandbox: str = "auto"
    # Per-session limits, like the managed service's defaults: 8 GiB, 2 vCPU, and a process cap.
    session_memory: int = 8 * 1024**3
    session_cpus: float = 2.0
    session_pids: int = 1024
    # Streamed output kept per session so clients can resume: in memory, and in all (memory + disk).
    stream_memory: int = 256 * 1024
    stream_history: int = 64 * 1024 * 1024
    # "default" (the host's network) or "none" (a network namespace with nothing in it).
    session_network: str = "default"
    # Run as root, each worker gets its own host uid from here on (none of them is a real user).
    worker_uid_base: int = 2_000_000_000
    # False: a session belongs to the principal that created it; True: any caller may use any.
    shared_sessions: bool = False
    store_url: str | None = None
    min_lifecycle_seconds: int = 60
    # A version asking for a Python this host lacks runs on the server's own (saying so) instead of failing.
    allow_host_python: bool = False
    max_sessions: int = 200
    warm_pool: int = 1
    warm_pool_max: int = 16
    # "fork": new sessions forked by their version's fork server, where the sandbox allows (else
    # fresh, said in each session's log); "fresh": each a new interpreter.
    session_start: str = "fork"
    reap_interval: float = 5.0
    max_payload: int = 100 * 1024 * 1024
    # A request line plus headers past this size is refused with 431 (uvicorn's parser has no bound).
    max_header_bytes: int = 64 * 1024
    # A client must send its whole request head within this many seconds, and may let its body
    # stall for at most `body_timeout`; past `max_connections` open connections, new requests get 503.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Requests per second per access key (per client IP when unsigned), bursting to the same number.
    rate_limit: float | None = None
    log_level: str = "warning"
    # Prometheus metrics (GET /metrics); with a port, also served unauthenticated on that listener.
    metrics: bool = True
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    # Traces (docs/observability.md): a span per request, spans received from workers over OTLP, kept
    # for `trace_retention` seconds and at most `trace_max_spans`, forwarded to `otlp_endpoint` if set.
    tracing: bool = True
    otlp_endpoint: str | None = None
    trace_retention: float = 7 * 24 * 3600.0
    trace_max_spans: int = 200_000

    @property
    def database_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'state.db'}"

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def worker_url(self) -> str | None:
        """The server's base URL as its workers reach it, or None when they cannot: workers without
        a network (`--session-network none`), or behind TLS whose certificate they have no way to trust."""
        if self.session_network == "none" or self.tls_cert:
            return None
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "localhost") else self.host
        host = "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"


__all__ = ["LOG_LEVELS", "ServerConfig", "agentcore_home"]
