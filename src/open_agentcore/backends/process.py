"""The process backend: one OS process per worker, confined by the bubblewrap sandbox of `sandbox.py`.

Sandboxed, a worker sees only the system paths, its version's code and environment (read-only)
and its own home and tmp; it runs with no capabilities, in its own namespaces, under a seccomp
filter; and when the server runs as root, as a host uid of its own. Without bubblewrap, workers
are plain processes of the server's user with a clean environment and their own home and temp
dirs, and `protections()` says so.

The server binds each worker's unix socket itself, in a directory the worker cannot write, and
hands the listening socket to it: the agent cannot swap the socket or the log file the server
reads for a link to something else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from . import process_tree, work_dir, worker_main
from .base import BackendUnavailable, SessionLimits, WorkerHandle, WorkerSpec, WorkerStartFailed
from .limits import LimitEnforcer, LimitsUnavailable, WorkerLimits, detect_limits, format_size
from .sandbox import (
    NETWORKS,
    Bubblewrap,
    Launch,
    SandboxUnavailable,
    SandboxView,
    find_bubblewrap,
    interpreter_paths,
    unreadable_by_others,
)
from .uids import DEFAULT_UID_BASE, HostUids
from .unix_http import unix_transport

logger = logging.getLogger("open_agentcore.backends.process")

LAUNCHER = Path(worker_main.__file__).resolve()
SANDBOXES = ("auto", "bwrap", "gvisor", "none")
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
_BASE_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")
_FILESYSTEM = "read-only system paths, the version's code and environment, its own home and tmp"


@dataclass
class ProcessWorker:
    """A worker process this backend started and owns (`pid`: the outermost process, bubblewrap's)."""

    worker_id: str
    process: asyncio.subprocess.Process
    socket_path: Path
    log_path: Path
    sandboxed: bool
    host_uid: int | None = None
    started_at: float = field(default_factory=time.monotonic)
    # The agent's own interpreter, which a graceful stop signals (bubblewrap forwards no signal).
    agent_pid: int | None = None
    limits: WorkerLimits | None = field(default=None, repr=False)
    # Set once it has exited: whether the kernel killed it for going past its memory limit.
    out_of_memory: bool = False
    _release_uid: Callable[[int], None] | None = field(default=None, repr=False)
    _finishing: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.returncode is None

    async def wait_exit(self) -> int:
        code = await self.process.wait()
        await self.finish()
        return code

    async def finish(self) -> None:
        """Once the worker has exited: note whether it ran out of memory, kill what is left in its
        cgroups and running as its host uid, remove the cgroups, give the uid back. Idempotent;
        concurrent callers share one clean-up."""
        if self._finishing is None:
            self._finishing = asyncio.get_running_loop().create_task(self._clean_up())
        await asyncio.shield(self._finishing)

    async def _clean_up(self) -> None:
        if self.limits is not None:
            limits = self.limits
            self.out_of_memory = await asyncio.to_thread(limits.out_of_memory)
            await asyncio.to_thread(limits.close)
        if self.host_uid is None or self._release_uid is None:
            return
        # Its pid namespace is gone with its init; this also covers anything that got out of it.
        if await asyncio.to_thread(process_tree.kill_all_of, self.host_uid):
            self._release_uid(self.host_uid)
        else:
            logger.error("Could not end the processes of uid %d (worker %s); uid not reused",
                         self.host_uid, self.worker_id)  # fmt: skip


class ProcessBackend:
    """Starts workers as local processes.

    `sandbox`: "bwrap" (refuse to start without the full sandbox), "auto" (the sandbox where it
    works here, else none, saying why) or "none". `network`: "default" (the host's) or "none" (a
    network namespace of its own: the server still reaches the worker over its unix socket).
    `uid_base`: as root, each worker runs as a host uid of its own drawn from
    [uid_base, uid_base + 2**20). `limits`: what each worker may use, enforced with cgroups where
    the host allows (see `limits.py`), else rlimits; None: no limits (tests). Construct it off the
    event loop: it runs the sandbox once to prove it works.
    """

    name = "process"

    def __init__(
        self, sandbox: str = "auto", *, network: str = "default", uid_base: int = DEFAULT_UID_BASE,
        limits: SessionLimits | None = None,
    ) -> None:  # fmt: skip
        if sandbox not in SANDBOXES:
            raise ValueError(f"sandbox must be one of {', '.join(SANDBOXES)}, not {sandbox!r}")
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {network!r}")
        if sandbox == "gvisor":
            raise BackendUnavailable("--sandbox gvisor is not implemented yet")
        self.network = network
        self._uids = HostUids(uid_base)
        self._sandbox: Bubblewrap | None = None
        self._namespaces: list[str] = []
        self._why_not = "disabled"
        if sandbox != "none":
            try:
                self._sandbox, self._namespaces = self._probe(network)
            except SandboxUnavailable as error:
                if sandbox == "bwrap":
                    raise BackendUnavailable(f"--sandbox bwrap was asked for, but {error}") from None
                self._why_not = str(error)
        if network == "none" and self._sandbox is None:
            raise BackendUnavailable(f"--session-network none needs the bwrap sandbox ({self._why_not})")
        self.sandboxed = self._sandbox is not None
        self._limits: LimitEnforcer | None = detect_limits(limits) if limits is not None else None

    def _probe(self, network: str) -> tuple[Bubblewrap, list[str]]:
        sandbox = find_bubblewrap(network)
        uid = self._uids.allocate() if sandbox.as_root else None
        try:
            namespaces = sandbox.probe(uid)
        finally:
            if uid is not None and process_tree.kill_all_of(uid):
                self._uids.release(uid)
        missing = [name for name in sandbox.namespaces() if name != "cgroup" and name not in namespaces]
        if missing:
            raise SandboxUnavailable(f"the sandbox did not get its own {', '.join(missing)} namespace")
        return sandbox, namespaces

    def sandbox_mode(self) -> str:
        """`bwrap`, or `none (<why>)`."""
        return "bwrap" if self._sandbox is not None else f"none ({self._why_not})"

    @property
    def own_uids(self) -> bool:
        """Whether each worker runs as a host uid of its own (sandboxed, as root)."""
        return self._sandbox is not None and self._sandbox.as_root

    def protections(self) -> dict[str, object]:
        """What confines a worker here, in words an operator can check (JSON-able)."""
        confinement = self._confinement()
        if self._limits is not None:
            confinement["limits"] = {"mode": str(self._limits.mode), **self._limits.describe(self.own_uids)}
        return confinement

    def _confinement(self) -> dict[str, object]:
        if self._sandbox is None:
            uid = os.geteuid()
            return {
                "sandbox": "none",
                "reason": self._why_not,
                "user": f"the server's own (uid {uid}{', root' if uid == 0 else ''})",
                "capabilities": "the server's" if uid == 0 else "none",
                "no_new_privs": False,
                "seccomp": "off",
                "filesystem": "everything the server's user can read and write",
                "network": "host",
                "namespaces": [],
            }
        if self._sandbox.as_root:
            user = f"a host uid per session ({self._uids.base}+), uid 1000 in its own user namespace"
        else:
            user = (
                f"the server's host uid ({os.geteuid()}) for every session, uid 1000 in its own user "
                "namespace: sessions are kept apart by namespaces, not by host uid"
            )
        return {
            "sandbox": "bwrap",
            "user": user,
            "capabilities": "none",
            "no_new_privs": True,
            "seccomp": f"on ({self._sandbox.architecture.name})",
            "filesystem": _FILESYSTEM,
            "network": "none" if self.network == "none" else "host",
            "namespaces": list(self._namespaces),
        }

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
        socket_path = spec.work_dir / "worker.sock"
        if len(os.fsencode(socket_path)) > _MAX_SOCKET_PATH:
            raise WorkerStartFailed(
                spec.worker_id,
                f"socket path {socket_path} is longer than {_MAX_SOCKET_PATH} bytes; use a shorter data dir",
            )
        host_uid = self._uids.allocate() if self.own_uids else None
        limits: WorkerLimits | None = None
        try:
            if self._limits is not None:
                limits = await asyncio.to_thread(self._limits.create, spec.worker_id, host_uid is not None)
            launch, log = await asyncio.to_thread(self._prepare, spec, socket_path, host_uid)
            try:
                process = await asyncio.create_subprocess_exec(
                    *(limits.command_prefix() if limits is not None else []),
                    *launch.argv,
                    cwd=spec.code_dir,
                    env=self._environment(spec),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    pass_fds=launch.fds,
                )
            finally:
                launch.close()
                os.close(log)
        except BaseException as error:
            if host_uid is not None:
                self._uids.release(host_uid)  # nothing was started as that uid
            if limits is not None:
                await asyncio.to_thread(limits.close)
            if isinstance(error, LimitsUnavailable):
                raise WorkerStartFailed(spec.worker_id, f"its limits could not be set up: {error}") from None
            raise
        worker = ProcessWorker(
            spec.worker_id, process, socket_path, spec.work_dir / "worker.log", self.sandboxed, host_uid,
            limits=limits, _release_uid=self._uids.release,
        )  # fmt: skip
        try:
            await self._wait_ready(worker, spec.start_timeout)
        except BaseException:
            await self.stop(worker, grace=0)
            raise
        sandboxed = self._sandbox is not None
        worker.agent_pid = (
            process_tree.first_descendant(process.pid, str(spec.python)) if sandboxed else process.pid
        )
        return worker

    def _prepare(self, spec: WorkerSpec, socket_path: Path, host_uid: int | None) -> tuple[Launch, int]:
        """Everything before the worker's process starts (blocking): its work dir, its listening
        socket, its log, and the command with the file descriptors it inherits."""
        view = self._view(spec) if self._sandbox is not None else None
        work_dir.prepare(spec.work_dir, host_uid)
        listener = work_dir.listen(socket_path)
        command = [
            str(spec.python), str(LAUNCHER), "--code-dir", str(spec.code_dir),
            "--entrypoint", spec.entrypoint, "--socket-fd", str(listener), "--worker-id", spec.worker_id,
        ]  # fmt: skip
        try:
            if self._sandbox is not None and view is not None:
                launch = self._sandbox.launch(view, command, host_uid)
                launch.fds = (listener, *launch.fds)
            else:
                launch = Launch(command, (listener,))
        except BaseException:
            os.close(listener)
            raise
        try:
            log = work_dir.open_log(spec.work_dir / "worker.log")
        except BaseException:
            launch.close()
            raise
        return launch, log

    def _view(self, spec: WorkerSpec) -> SandboxView:
        """What the worker sees (asks the interpreter once; checks the permissions it needs)."""
        interpreter = interpreter_paths(str(spec.python))
        read_only = (*interpreter, spec.code_dir, *spec.read_only_paths, LAUNCHER.parent)
        for path in read_only:
            for hidden in spec.hidden_paths:
                if path == hidden or path in hidden.parents:
                    raise WorkerStartFailed(
                        spec.worker_id, f"{path} cannot be shown to workers: it holds {hidden}"
                    )
        if self._sandbox is not None and self._sandbox.as_root:
            # The worker's uid is nobody's: what it must read has to be readable by all.
            needed = [(path, False) for path in (*read_only, LAUNCHER)]
            for path, executable in [*needed, (Path(os.path.realpath(spec.python)), True)]:
                if problem := unreadable_by_others(path, executable):
                    raise WorkerStartFailed(spec.worker_id, problem)
        home = spec.work_dir / "home"
        return SandboxView(read_only, writable=(home, spec.work_dir / "tmp"), chdir=spec.code_dir, home=home)

    async def _wait_ready(self, worker: ProcessWorker, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        exited = loop.create_task(worker.process.wait())
        transport = unix_transport(worker.socket_path)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
                while True:
                    remaining = deadline - loop.time()
                    # The socket listens from the start: a ping waits in its backlog until the agent serves.
                    ping = loop.create_task(client.get("/ping", timeout=max(remaining, 0.001)))
                    await asyncio.wait(
                        {ping, exited}, timeout=max(remaining, 0), return_when=asyncio.FIRST_COMPLETED
                    )
                    if exited.done():
                        await _cancel(ping)
                        raise WorkerStartFailed(
                            worker.worker_id,
                            f"the agent exited with code {worker.process.returncode} before it was ready: "
                            + _last_line(worker.log_path),
                            _tail(worker.log_path),
                        )
                    answered = ping.done() and not ping.cancelled() and ping.exception() is None
                    if answered and ping.result().status_code == 200:
                        return
                    await _cancel(ping)
                    if loop.time() >= deadline:
                        raise WorkerStartFailed(
                            worker.worker_id,
                            f"the agent did not answer /ping within {timeout:g}s",
                            _tail(worker.log_path),
                        )
                    await asyncio.sleep(0.01)
        finally:
            await _cancel(exited)

    async def stop(self, handle: WorkerHandle, grace: float = 10.0) -> None:
        """Ask the agent to stop (SIGTERM), kill the whole sandbox after `grace` seconds; idempotent.

        When it returns, no process of the worker is left: its sandbox's pid namespace is gone,
        and as root nothing runs as its host uid any more.
        """
        if not isinstance(handle, ProcessWorker):
            raise TypeError(f"the process backend did not start {handle!r}")
        process = handle.process
        if process.returncode is None:
            if handle.sandboxed and handle.agent_pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(handle.agent_pid, signal.SIGTERM)
            else:
                _signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except asyncio.TimeoutError:
                # bubblewrap's pid-1 dies with it, and the kernel then kills every process of the sandbox.
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
        await handle.finish()
        handle.socket_path.unlink(missing_ok=True)

    def exit_reason(self, handle: WorkerHandle, code: int) -> str:
        """Why a worker that exited by itself ended, in words for its caller and its session's log."""
        if isinstance(handle, ProcessWorker) and handle.out_of_memory and self._limits is not None:
            limit = format_size(self._limits.limits.memory_bytes)
            return f"the session ran out of memory (limit {limit}, --session-memory) and was killed"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"worker killed by {signal.Signals(-code).name}"
        if 128 < code < 160:  # bubblewrap reports its child's death by signal N as 128 + N
            with contextlib.suppress(ValueError):
                return f"worker exited with code {code} ({signal.Signals(code - 128).name})"
        return f"worker exited with code {code}"

    def close(self) -> None:
        """Remove this server's cgroups (at shutdown, once every worker has stopped)."""
        if self._limits is not None:
            self._limits.close()


async def _cancel(task: asyncio.Task[object]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(BaseException):
        await task


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
    """Kill a worker left over from a previous server, only if `pid` really is that worker.

    `pid` is the outermost process (bubblewrap's, when sandboxed): killing it takes its sandbox's
    pid namespace, and with it every process the agent started, down with it.
    """
    arguments = process_tree.cmdline(pid)
    if str(LAUNCHER).encode() not in arguments or not any(worker_id.encode() in part for part in arguments):
        return False
    _signal_group(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    return True


def probe_bwrap(network: str = "default") -> str | None:
    """None when the full bubblewrap sandbox works here, else why not (runs it once)."""
    try:
        ProcessBackend("bwrap", network=network)
    except BackendUnavailable as error:
        return str(error).removeprefix("--sandbox bwrap was asked for, but ")
    return None


__all__ = ["LAUNCHER", "SANDBOXES", "ProcessBackend", "ProcessWorker", "kill_orphan", "probe_bwrap"]
