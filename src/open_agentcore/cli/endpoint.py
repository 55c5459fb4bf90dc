"""Which runtime server the CLI talks to, and the record a running server leaves of where it listens.

`agentcore server run` (and so `server start`) writes `server.json` in its data dir: URL, TLS
certificate, pid, data dir; it stays when the server stops, so hints can start it again where it
was. Every command that means "my server" reads it there, so a server
started on any port is found without repeating the port. The endpoint is chosen once, in order:
`--endpoint-url` > `$AGENTCORE_ENDPOINT_URL` > `$AWS_ENDPOINT_URL` > the recorded server of
`$AGENTCORE_HOME/server` > http://127.0.0.1:8900.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from open_agentcore.server.config import agentcore_home

from .errors import CliError

DEFAULT_PORT = 8900
DEFAULT_ENDPOINT = f"http://127.0.0.1:{DEFAULT_PORT}"
RECORD_FILE = "server.json"
ENDPOINT_ENV = "AGENTCORE_ENDPOINT_URL"
AWS_ENDPOINT_ENV = "AWS_ENDPOINT_URL"
FLAG = "--endpoint-url"

_override: str | None = None


def use_endpoint(url: str | None) -> None:
    """The `--endpoint-url` given on the command line (main sets it once, before any command runs)."""
    global _override
    _override = url.rstrip("/") if url else None
    if _override is not None:
        _check_url(_override, FLAG)


def default_data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return agentcore_home(environ) / "server"


@dataclass(frozen=True)
class ServerRecord:
    """Where a server started from one data dir listens, as it wrote it when it started."""

    url: str
    pid: int
    data_dir: str
    host: str
    port: int
    tls_cert: str | None = None
    tls_key: str | None = None  # its path only, for the command that starts the server again
    self_signed: bool = False

    @property
    def path(self) -> Path:
        return Path(self.data_dir) / RECORD_FILE

    def alive(self) -> bool:
        """Whether the process that wrote the record still exists (it may still be starting)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def start_command(self) -> str:
        """The command that starts this server again: same host, port, data dir and certificate."""
        return start_command(self.host, self.port, Path(self.data_dir), self.tls_cert, self.tls_key)

    def save(self) -> None:
        temporary = self.path.with_name(f".{RECORD_FILE}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(temporary, self.path)


def read_record(data_dir: Path) -> ServerRecord | None:
    """The record in `data_dir`, or None when there is none (or it is unreadable)."""
    try:
        data: dict[str, Any] = json.loads((data_dir / RECORD_FILE).read_text())
        return ServerRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def start_command(
    host: str, port: int, data_dir: Path, tls_cert: str | None = None, tls_key: str | None = None
) -> str:
    """`agentcore server start` with exactly the options that differ from the defaults."""
    words = ["agentcore", "server", "start"]
    if host != "127.0.0.1":
        words += ["--host", host]
    if port != DEFAULT_PORT:
        words += ["--port", str(port)]
    if data_dir.resolve() != default_data_dir().resolve():
        words += ["--data-dir", str(data_dir)]
    if tls_cert:
        words += ["--tls-cert", tls_cert, "--tls-key", tls_key or "KEY_FILE"]
    return shlex.join(words)


@dataclass(frozen=True)
class Endpoint:
    """The server URL chosen for this command, why, and the local record behind it (if any)."""

    url: str
    source: str  # "--endpoint-url", an environment variable's name, "server.json" or "default"
    record: ServerRecord | None

    @property
    def data_dir(self) -> Path:
        """Where the admin key of a local server is kept."""
        return Path(self.record.data_dir) if self.record else default_data_dir()

    def down_hint(self) -> str:
        """What to run when nothing answers at `url`: a command that starts exactly that server."""
        if self.record is not None:
            return f"start it: {self.record.start_command()}"
        parts = urlsplit(self.url)
        if (parts.hostname or "") not in ("127.0.0.1", "localhost", "::1"):
            return f"check {self.url} (chosen by {self.source})"
        tls = "--tls-cert FILE --tls-key FILE" if parts.scheme == "https" else ""
        start = start_command(parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORT, default_data_dir())
        return f"start one: {start} {tls}".rstrip()


def resolve(environ: Mapping[str, str] = os.environ) -> Endpoint:
    """The endpoint for this command (see the module docstring for the order)."""
    record = read_record(default_data_dir(environ))
    for source, value in ((FLAG, _override), (ENDPOINT_ENV, environ.get(ENDPOINT_ENV)),
                          (AWS_ENDPOINT_ENV, environ.get(AWS_ENDPOINT_ENV))):  # fmt: skip
        if value:
            url = value.rstrip("/")
            _check_url(url, source)
            return Endpoint(url, source, record if record is not None and record.url == url else None)
    if record is not None:
        return Endpoint(record.url, RECORD_FILE, record)
    return Endpoint(DEFAULT_ENDPOINT, "default", None)


def _check_url(url: str, source: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"{source} must be an http(s) URL like {DEFAULT_ENDPOINT}, not {url!r}")


__all__ = [
    "DEFAULT_ENDPOINT",
    "ENDPOINT_ENV",
    "RECORD_FILE",
    "Endpoint",
    "ServerRecord",
    "default_data_dir",
    "read_record",
    "resolve",
    "start_command",
    "use_endpoint",
]
