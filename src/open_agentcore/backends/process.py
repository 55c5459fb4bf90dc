"""The process backend: one OS process per worker, sandboxed with bubblewrap when it is available.

In a bubblewrap sandbox a worker has its own mount, pid, IPC and UTS namespaces: the filesystem
is read-only except its own work dir, hidden paths (the server's data dir, other sessions) are
empty, and it sees only its own processes. Without bubblewrap, workers are plain processes with a
clean environment and their own home and temp dirs, but no filesystem isolation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from . import worker_main
from .base import BackendUnavailable, WorkerHandle, WorkerSpec, WorkerStartFailed
from .unix_http import unix_transport

logger = logging.getLogger("open_agentcore.backends.process")

LAUNCHER = Path(worker_main.__file__).resolve()
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
_BASE_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")


@dataclass
class ProcessWorker:
    """A worker process this backend started and owns."""

    worker_id: str
    process: asyncio.subprocess.Process
    socket_path: Path
    log_path: Path
    sandboxed: bool
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None

    async def wait_exit(self) -> int:
        return await self.process.wait()


def probe_bwrap() -> str | None:
    """None when bubblewrap works here, else why not."""
    binary = shutil.which("bwrap")
    if binary is None:
        return "bubblewrap not found"
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments
            [binary, "--ro-bind", "/", "/", "--unshare-pid", "--die-with-parent", "true"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap not working: {error}"
    if done.returncode != 0:
        return f"bubblewrap not working: {done.stderr.strip()[:200]}"
    return None


@functools.lru_cache(maxsize=64)
def interpreter_paths(python: str) -> tuple[str, ...]:
    """The directories an interpreter imports from (prefixes and sys.path), asked of it once.

    They must stay visible inside the sandbox even when they sit under a hidden path or /tmp
    (a checkout in /tmp, an environment in the server's data dir, an editable install).
    """
    probe = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, *sys.path]))"
    try:
        done = subprocess.run(  # noqa: S603 - the worker's own interpreter, fixed arguments
            [python, "-c", probe], capture_output=True, text=True, timeout=60, cwd="/"
        )
        found = json.loads(done.stdout) if done.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired, ValueError):
        found = []
    return tuple(sorted({path for path in found if path and os.path.isdir(path)}))


def bwrap_prefix(spec: WorkerSpec, binary: str = "bwrap") -> list[str]:
    """The bubblewrap arguments that confine one worker (later binds win over earlier tmpfs)."""
    # /tmp here is a fresh tmpfs inside the sandbox, not the host's.
    args = [binary, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]  # noqa: S108
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session"]
    for hidden in spec.hidden_paths:
        args += ["--tmpfs", str(hidden)]
    visible = (*interpreter_paths(str(spec.python)), spec.code_dir, *spec.read_only_paths, LAUNCHER.parent)
    for path in visible:
        args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(spec.work_dir), str(spec.work_dir), "--chdir", str(spec.code_dir)]
    return args


class ProcessBackend:
    """Starts workers as local processes (`sandbox`: "auto", "bwrap" or "none")."""

    name = "process"

    def __init__(self, sandbox: str = "auto") -> None:
        if sandbox not in ("auto", "bwrap", "none"):
            raise ValueError(f"sandbox must be auto, bwrap or none, not {sandbox!r}")
        problem = None if sandbox == "none" else probe_bwrap()
        if sandbox == "bwrap" and problem is not None:
            raise BackendUnavailable(f"--sandbox bwrap was asked for, but {problem}")
        self.sandboxed = sandbox != "none" and problem is None
        # Resolved now, in the server's environment: the worker's clean environment decides
        # nothing about which bubblewrap runs.
        self._bwrap = shutil.which("bwrap") or "bwrap"
        self._why_not = "disabled" if sandbox == "none" else problem

    def sandbox_mode(self) -> str:
        """`bwrap`, or `none (<why>)`."""
        return "bwrap" if self.sandboxed else f"none ({self._why_not})"

    def _environment(self, spec: WorkerSpec) -> dict[str, str]:
        # Never the server's own environment: it may hold secrets.
        base = {name: os.environ[name] for name in _BASE_ENVIRONMENT if name in os.environ}
        return {
            **base,
            **spec.environment,
            "HOME": str(spec.work_dir / "home"),
            "TMPDIR": str(spec.work_dir / "tmp"),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    async def start(self, spec: WorkerSpec) -> ProcessWorker:
        """Start the worker and return once its `/ping` answers; `WorkerStartFailed` otherwise."""
        for sub in ("home", "tmp"):
            (spec.work_dir / sub).mkdir(parents=True, exist_ok=True)
        socket_path = spec.work_dir / "worker.sock"
        if len(os.fsencode(socket_path)) > _MAX_SOCKET_PATH:
            raise WorkerStartFailed(
                spec.worker_id,
                f"socket path {socket_path} is longer than {_MAX_SOCKET_PATH} bytes; use a shorter data dir",
            )
        socket_path.unlink(missing_ok=True)
        log_path = spec.work_dir / "worker.log"
        command = [
            str(spec.python), str(LAUNCHER), "--code-dir", str(spec.code_dir),
            "--entrypoint", spec.entrypoint, "--socket", str(socket_path),
        ]  # fmt: skip
        if self.sandboxed:
            command = bwrap_prefix(spec, self._bwrap) + command
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=spec.code_dir,
                env=self._environment(spec),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        worker = ProcessWorker(spec.worker_id, process, socket_path, log_path, self.sandboxed)
        try:
            await self._wait_ready(worker, spec.start_timeout)
        except BaseException:
            await self.stop(worker, grace=0)
            raise
        return worker

    async def _wait_ready(self, worker: ProcessWorker, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        transport = unix_transport(worker.socket_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://worker", timeout=1.0) as client:
            while True:
                if not worker.alive():
                    raise WorkerStartFailed(
                        worker.worker_id,
                        f"the agent exited with code {worker.process.returncode} before it was ready: "
                        + _last_line(worker.log_path),
                        _tail(worker.log_path),
                    )
                if worker.socket_path.exists():
                    with contextlib.suppress(httpx.HTTPError, OSError):
                        if (await client.get("/ping")).status_code == 200:
                            return
                if time.monotonic() > deadline:
                    raise WorkerStartFailed(
                        worker.worker_id,
                        f"the agent did not answer /ping within {timeout:g}s",
                        _tail(worker.log_path),
                    )
                await asyncio.sleep(0.01)

    async def stop(self, handle: WorkerHandle, grace: float = 10.0) -> None:
        """SIGTERM the worker's process group, SIGKILL after `grace` seconds; idempotent, reaps it."""
        if not isinstance(handle, ProcessWorker):
            raise TypeError(f"the process backend did not start {handle!r}")
        process = handle.process
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except asyncio.TimeoutError:
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
        handle.socket_path.unlink(missing_ok=True)


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _last_line(path: Path) -> str:
    for line in reversed(_tail(path, 50).splitlines()):
        if line.strip() and not line.startswith((" ", "Traceback")):
            return line.strip()
    return "(no output)"


def kill_orphan(pid: int, worker_id: str) -> bool:
    """Kill a worker left over from a previous server, only if `pid` really is that worker."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if str(LAUNCHER).encode() not in cmdline or not any(worker_id.encode() in part for part in cmdline):
        return False
    _signal_group(pid, signal.SIGKILL)
    return True


__all__ = ["LAUNCHER", "ProcessBackend", "ProcessWorker", "bwrap_prefix", "kill_orphan", "probe_bwrap"]
