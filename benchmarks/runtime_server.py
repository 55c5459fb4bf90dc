"""A runtime server as a subprocess pinned to core 0, driven over signed HTTP, and its workers' processes.

`agentcore server run` is started exactly as an operator starts it; its workers inherit its core.
Requests are plain `http.client` on keep-alive connections, signed with botocore's SigV4Auth just
before they are sent, so the time a benchmark takes around a request is the wire and the server.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials

from servers import SERVER_CORE, free_port

# A throwaway admin key for a server that lives in a temporary data dir for one run.
KEY_ID, SECRET = "AKIABENCHADMIN000001", "bench-secret-for-a-throwaway-server-00"
REGION = "us-east-1"
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
_LAUNCHER = b"worker_main.py"
_FORK_SERVER = b"fork_main.py"  # its children are workers too (--session-start fork)
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.01) -> T:
    """Poll `predicate` until it returns something truthy; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:g}s")
        time.sleep(interval)


class UnixConnection(http.client.HTTPConnection):
    """http.client over a unix socket: how the server itself reaches a worker."""

    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("worker", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    first_byte_s: float
    total_s: float


def exchange(
    connection: http.client.HTTPConnection, method: str, path: str, body: bytes, headers: dict[str, str]
) -> Reply:
    """One request on a keep-alive connection; times the response head plus first body chunk, and all."""
    started = time.perf_counter()
    connection.request(method, path, body, headers)
    response = connection.getresponse()
    first = response.read1(65536)
    first_byte = time.perf_counter() - started
    rest = response.read()
    return Reply(response.status, first + rest, first_byte, time.perf_counter() - started)


class Signer:
    """SigV4 headers for one request, as boto3 would send them to this server."""

    def __init__(self, base_url: str) -> None:
        credentials = botocore.credentials.Credentials(KEY_ID, SECRET)
        self._auth = botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", REGION)
        self._base_url = base_url

    def headers(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        request = botocore.awsrequest.AWSRequest(
            method=method, url=self._base_url + path, data=body, headers=headers
        )
        self._auth.add_auth(request)
        return dict(request.headers.items())


@dataclass
class RuntimeServer:
    """A running `agentcore server run`; `known_workers` remembers every worker pid it was seen with."""

    port: int
    data_dir: Path
    warm_pool: int
    process: subprocess.Popen[bytes]
    known_workers: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.signer = Signer(self.url)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def signed(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        connection: http.client.HTTPConnection | None = None,
    ) -> Reply:
        """Sign (untimed), then send on `connection` or a fresh one."""
        signed = self.signer.headers(method, path, body, headers or {})
        own = connection is None
        connection = connection or self.connection()
        try:
            return exchange(connection, method, path, body, signed)
        finally:
            if own:
                connection.close()

    def control(self) -> Any:
        return boto3.client(
            "bedrock-agentcore-control",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            config=botocore.config.Config(retries={"max_attempts": 1}),
        )

    def health(self) -> dict[str, Any]:
        connection = self.connection()
        try:
            reply = exchange(connection, "GET", "/_agentcore/health", b"", {})
        finally:
            connection.close()
        health: dict[str, Any] = json.loads(reply.body)
        return health

    def deploy(self, agent: Path, name: str) -> tuple[str, str]:
        """Upload `agent` as the whole artifact, create a runtime on it, wait for READY: (id, ARN)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.write(agent, agent.name)
        uploaded = self.signed("PUT", "/_agentcore/artifacts", buffer.getvalue())
        if uploaded.status != 200:
            raise RuntimeError(f"artifact upload failed: {uploaded.status} {uploaded.body[:300]!r}")
        control = self.control()
        created = control.create_agent_runtime(
            agentRuntimeName=name,
            roleArn="arn:aws:iam::000000000000:role/bench",
            agentRuntimeArtifact={
                "codeConfiguration": {
                    "code": {
                        "s3": {"bucket": "agentcore-artifacts", "prefix": json.loads(uploaded.body)["key"]}
                    },
                    "runtime": "PYTHON_3_11",
                    "entryPoint": [agent.name],
                }
            },
        )
        runtime_id = created["agentRuntimeId"]

        def settled() -> str | None:
            status = str(control.get_agent_runtime(agentRuntimeId=runtime_id)["status"])
            return None if status in ("CREATING", "UPDATING") else status

        status = wait_for(settled, 120, f"runtime {runtime_id} to build", interval=0.1)
        if status != "READY":
            raise RuntimeError(f"runtime {runtime_id} ended {status}")
        return runtime_id, str(created["agentRuntimeArn"])

    def sessions(self, runtime_id: str) -> list[dict[str, Any]]:
        reply = self.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions")
        sessions: list[dict[str, Any]] = json.loads(reply.body)["sessions"]
        return sessions

    def worker_pids(self) -> set[int]:
        """The server's worker processes (with bubblewrap: the outer bwrap of each sandbox)."""
        found = {pid for pid in children(self.pid) if _LAUNCHER in _cmdline(pid)}
        for fork_server in self.fork_server_pids():
            found |= set(_forked_workers(fork_server))
        self.known_workers |= found
        return found

    def fork_server_pids(self) -> list[int]:
        """The server's fork servers (`--session-start fork`): one per version with workers."""
        return [pid for pid in children(self.pid) if _FORK_SERVER in _cmdline(pid)]

    def warm_pool_ready(self, runtime_id: str) -> bool:
        """True once `warm_pool` spare workers answer `/ping` (the server checks it every 10 ms)."""
        in_sessions = {session["pid"] for session in self.sessions(runtime_id)}
        spare = self.worker_pids() - in_sessions
        return len(spare) >= self.warm_pool and all(
            _answers_ping(socket_of(pid, self.data_dir)) for pid in spare
        )

    def wait_warm_pool(self, runtime_id: str, timeout: float = 60) -> None:
        wait_for(lambda: self.warm_pool_ready(runtime_id), timeout, "the warm pool to refill", interval=0.02)
        time.sleep(0.1)  # not synchronisation: a margin for the server's own 10 ms readiness poll


def invocation_path(arn: str, action: str = "invocations") -> str:
    """The data-plane path boto3 uses: ARN percent-encoded, endpoint DEFAULT."""
    return f"/runtimes/{quote(arn, safe='')}/{action}?qualifier=DEFAULT"


def invocation_headers(session_id: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Accept": "application/json", SESSION_HEADER: session_id}


def new_session_id() -> str:
    return str(uuid.uuid4())


@contextlib.contextmanager
def running_server(
    warm_pool: int,
    timeout: float = 60,
    cores: str = SERVER_CORE,
    options: Sequence[str] = (),
    python: str = sys.executable,
) -> Iterator[RuntimeServer]:
    """`agentcore server run [options]` on a free port and a fresh data dir, pinned to core 0; all
    stopped on exit. `python`: another checkout's interpreter (its `.venv/bin/python`) runs that
    checkout's server."""
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="oacb-", dir="/tmp"))
    port = free_port()
    command = [
        "taskset", "-c", cores, python, "-m", "open_agentcore.cli", "server", "run",
        "--port", str(port), "--data-dir", str(data_dir), "--warm-pool", str(warm_pool), *options,
    ]  # fmt: skip
    environment = {
        **os.environ,
        "AGENTCORE_ADMIN_ACCESS_KEY_ID": KEY_ID,
        "AGENTCORE_ADMIN_SECRET_ACCESS_KEY": SECRET,
    }
    # A file, not a pipe: an unread pipe fills up and then blocks the server.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    server = RuntimeServer(port, data_dir, warm_pool, process)
    try:

        def up() -> bool:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"runtime server exited: {log.read().decode(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                return server.health().get("status") == "ok"
            return False

        wait_for(up, timeout, "the runtime server to answer /_agentcore/health", interval=0.05)
        yield server
    finally:
        _stop(server)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def _stop(server: RuntimeServer) -> None:
    """SIGTERM the server (it stops its workers), then kill any worker it left behind."""
    with contextlib.suppress(OSError):
        server.worker_pids()
    server.process.terminate()
    try:
        server.process.wait(60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(10)
    for pid in server.known_workers:
        # Only a process that still is one of our workers: pids are reused.
        if _LAUNCHER in _cmdline(pid) or _FORK_SERVER in _cmdline(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


# Processes ---------------------------------------------------------------------------------


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from every thread's children list."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants: with bubblewrap, a worker is bwrap → bwrap (pid 1) → python."""
    tree = [pid]
    for child in children(pid):
        tree += process_tree(child)
    return tree


def _serves_a_session(pid: int) -> bool:
    """A forked process whose stdout is a session's log (not a spare's, which is its fork server's)."""
    with contextlib.suppress(OSError):
        return Path(os.readlink(f"/proc/{pid}/fd/1")).name == "worker.log"
    return False


def _forked_workers(pid: int) -> list[int]:
    """The processes under `pid` (a fork server, sandboxed or not) that are a session's worker: one
    serving it, or (sandboxed) the reaper, its pid 1, whose child serves it. Spares are neither."""
    found: list[int] = []
    for child in children(pid):
        if _serves_a_session(child):
            found.append(child)
        elif _cmdline(child).startswith(b"agentcore-reaper"):
            found += [child] if any(_serves_a_session(agent) for agent in children(child)) else []
        else:
            found += _forked_workers(child)
    return found


def is_python(pid: int) -> bool:
    return not os.path.basename(_cmdline(pid).split(b"\0")[0]).startswith(b"bwrap")


def socket_of(pid: int, data_dir: Path) -> str:
    """The unix socket a worker serves on: the server binds it in the worker's work dir, named by
    the `--worker-id` on its command line (older servers passed `--socket PATH`)."""
    args = _cmdline(pid).split(b"\0")
    if b"--socket" in args:
        return args[args.index(b"--socket") + 1].decode()
    if b"--worker-id" in args:
        return str(data_dir / "w" / args[args.index(b"--worker-id") + 1].decode() / "worker.sock")
    for member in process_tree(pid):  # a forked worker: its agent's stdout is the log beside its socket
        with contextlib.suppress(OSError):
            log = Path(os.readlink(f"/proc/{member}/fd/1"))
            if log.name == "worker.log":
                return str(log.parent / "worker.sock")
    return ""


def smaps_rollup(pid: int) -> dict[str, int]:
    """`/proc/<pid>/smaps_rollup` in KiB (Pss, Pss_Anon, Pss_File, Rss, ...)."""
    rollup: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        rollup[name.strip()] = int(rest.split()[0])
    return rollup


def _status_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith(field + ":")).split()[1])


def rss_kib(pid: int) -> int:
    return _status_kib(pid, "VmRSS")


def page_tables_kib(pid: int) -> int:
    """Kernel memory PSS leaves out: the process's page tables."""
    return _status_kib(pid, "VmPTE")


def _answers_ping(path: str) -> bool:
    if not path or not os.path.exists(path):
        return False
    connection = UnixConnection(path, timeout=1)
    try:
        return exchange(connection, "GET", "/ping", b"", {}).status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
