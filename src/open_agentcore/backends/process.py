"""The process backend: one OS process per worker, confined by the bubblewrap sandbox of `sandbox.py`
or, asked for, by gVisor (`gvisor.py`).

Sandboxed, a worker sees only the system paths, its version's code and environment (read-only)
and its own home and tmp; it runs with no capabilities, in its own namespaces, under a seccomp
filter (under gVisor: on a user-space kernel); and when the server runs as root, as a uid of its
own. Without a sandbox, workers are plain processes of the server's user with a clean environment
and their own home and temp dirs, and `protections()` says so.

The server binds each bubblewrap worker's unix socket itself, in a directory the worker cannot
write, and hands the listening socket to it: the agent cannot swap the socket or the log file the
server reads for a link to something else. A gVisor worker must make its socket itself, in a
directory of its own; the server takes it only if it is a real socket of the worker's, through a
hard link in the work dir (`work_dir.adopt_socket`), so `socket_path` is just as safe to connect to.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import fork_gate, fork_sandbox, gvisor, oci_bundle, process_tree, reaper, work_dir, worker_main
from .base import BackendUnavailable, SessionLimits, WorkerHandle, WorkerSpec, WorkerStartFailed
from .fork_server import ForkFailed, ForkServers, Image, Unforkable
from .fork_spares import Spare, Spares
from .gvisor import Gvisor, find_gvisor
from .limits import LimitEnforcer, LimitMode, LimitsUnavailable, WorkerLimits, detect_limits, format_size
from .ping import ping
from .process_worker import ProcessWorker
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

logger = logging.getLogger("open_agentcore.backends.process")

LAUNCHER = Path(worker_main.__file__).resolve()
SANDBOXES = ("auto", "bwrap", "gvisor", "none")
SESSION_STARTS = ("fork", "fresh")
# Seconds a version's fork server (and its spare) stays after its last worker ends: a version used
# now and then keeps starting sessions in milliseconds instead of paying for a new fork server.
FORK_LINGER = 60.0
_WARM_START_DEFER = 0.05
# Variables whose value differs between sessions of one version: the session's id and its span
# credential (`telemetry/worker_environment.py`). They reach each forked child with the rest of its
# environment, but must not pick its fork server: keyed by them, every session would start one.
_PER_SESSION_VARIABLES = frozenset({"AGENTCORE_SESSION_ID", "OTEL_EXPORTER_OTLP_HEADERS"})
_FORK_NOT_WITH_GVISOR = "gVisor sessions start as fresh processes: the fork server runs with bwrap or none"
_FORK_NEEDS_ROOT = (
    "a sandboxed fork server needs a server running as root (each version's fork server runs as a host "
    "uid of its own)"
)
_FORK_NEEDS_CGROUPS = (
    "sandboxed forked sessions share their version's host uid, so their limits need cgroups, which this "
    "host does not offer (rlimits would count every session of a version together)"
)
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
_BASE_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")
_FILESYSTEM = "read-only system paths, the version's code and environment, its own home and tmp"


class ProcessBackend:
    """Starts workers as local processes.

    `sandbox`: "bwrap" (refuse to start without the full sandbox), "gvisor" (each worker in a
    gVisor sandbox; refuse to start where runsc does not work), "auto" (bwrap where it works
    here, else none, saying why) or "none". `network`: "default" (the host's) or "none" (a
    network namespace of its own: the server still reaches the worker over its unix socket).
    `uid_base`: as root, each worker runs as a uid of its own drawn from
    [uid_base, uid_base + 2**20). `limits`: what each worker may use, enforced with cgroups where
    the host allows (see `limits.py`), else rlimits; None: no limits (tests). `state_dir`
    (gvisor): where runsc keeps its sandboxes; give the server's own (under its data dir), and the
    sandboxes a crashed server left there are deleted here; None: a private temporary dir.
    `session_start`: "fresh" (each worker a new process) or "fork" (forked by its version's fork
    server, `fork_server.py`, sandboxed by `fork_sandbox.py` with bwrap; with none, or bwrap as
    root with cgroups, else fresh, saying why in the session's log); `fork_linger`: seconds a
    version's fork server outlives its last worker (`FORK_LINGER`). Construct it off the event
    loop: it runs the sandbox once to prove it works.
    """

    name = "process"

    def __init__(
        self, sandbox: str = "auto", *, network: str = "default", uid_base: int = DEFAULT_UID_BASE,
        limits: SessionLimits | None = None, state_dir: Path | None = None, session_start: str = "fresh",
        fork_linger: float = FORK_LINGER,
    ) -> None:  # fmt: skip
        if sandbox not in SANDBOXES:
            raise ValueError(f"sandbox must be one of {', '.join(SANDBOXES)}, not {sandbox!r}")
        if session_start not in SESSION_STARTS:
            raise ValueError(
                f"session_start must be one of {', '.join(SESSION_STARTS)}, not {session_start!r}"
            )
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {network!r}")
        self.network = network
        self._uids = HostUids(uid_base)
        self._sandbox: Bubblewrap | None = None
        self._gvisor: Gvisor | None = None
        self._private_state_dir: Path | None = None
        self._namespaces: list[str] = []
        self._why_not = "disabled"
        if sandbox == "gvisor":
            self._gvisor = self._probe_gvisor(network, state_dir)
        elif sandbox != "none":
            try:
                self._sandbox, self._namespaces = self._probe(network)
            except SandboxUnavailable as error:
                if sandbox == "bwrap":
                    raise BackendUnavailable(f"--sandbox bwrap was asked for, but {error}") from None
                self._why_not = str(error)
        self.sandboxed = self._sandbox is not None or self._gvisor is not None
        if network == "none" and not self.sandboxed:
            raise BackendUnavailable(f"--session-network none needs the bwrap sandbox ({self._why_not})")
        self._session_limits = limits
        if limits is not None and self._gvisor is not None:
            # The sentry's and gofer's own host threads count against the sandbox's pids limit.
            limits = dataclasses.replace(limits, pids=limits.pids + gvisor.THREADS_HEADROOM)
        self._limits: LimitEnforcer | None = detect_limits(limits) if limits is not None else None
        self.session_start = session_start
        self._forks: ForkServers | None = None
        self._spares: Spares | None = None
        self._reaper: reaper.Reaper | None = None
        self._fork_views: dict[tuple[Path, Path, tuple[Path, ...], tuple[Path, ...]], SandboxView] = {}
        self._fork_uids: dict[Image, int] = {}
        self._why_fresh = self._why_not_fork()
        if session_start == "fork" and self._why_fresh is None:
            enforcer = self._limits
            self._forks = ForkServers(
                (lambda worker_id: enforcer.create(worker_id, False)) if enforcer is not None else None,
                confine=self._confine_fork_server if self._sandbox is not None else None,
            )
            self._spares = Spares(self._forks, self._limits, fork_linger)
            if self._sandbox is not None:
                self._reaper = reaper.build()
                if self._reaper.program is None:
                    logger.warning("Forked sessions' pid 1 stays a Python process: %s", self._reaper.reason)

    def _why_not_fork(self) -> str | None:
        """Why sessions cannot be forked with this sandbox, or None."""
        if self._gvisor is not None:
            return _FORK_NOT_WITH_GVISOR
        if self._sandbox is None:
            return None
        if not self._sandbox.as_root:
            return _FORK_NEEDS_ROOT
        if self._limits is not None and self._limits.mode is LimitMode.RLIMIT:
            return _FORK_NEEDS_CGROUPS
        return None

    def _confine_fork_server(self, image: Image, command: list[str]) -> Launch:
        """The bubblewrap command around a version's fork server (blocking): its view, as a host uid
        that is its version's for as long as this backend lives (its sessions run as it too, and
        may outlive a fork server that crashed)."""
        assert self._sandbox is not None and image.view is not None
        uid = self._fork_uids.get(image)
        if uid is None:
            uid = self._fork_uids[image] = self._uids.allocate()
        if self._reaper is None or self._reaper.program is None:
            return self._sandbox.launch_fork_server(image.view, command, uid)
        program = reaper.program_fd(self._reaper.program)
        try:
            with_reaper = [*command, "--reaper-fd", str(program)]
            launch = self._sandbox.launch_fork_server(image.view, with_reaper, uid)
        except BaseException:
            os.close(program)
            raise
        return Launch(launch.argv, (*launch.fds, program))

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

    def _probe_gvisor(self, network: str, state_dir: Path | None) -> Gvisor:
        """runsc, proven to run a sandbox here; the sandboxes a previous server left in `state_dir`
        are deleted first."""
        if state_dir is None:
            state_dir = self._private_state_dir = Path(tempfile.mkdtemp(prefix="open-agentcore-runsc-"))
        try:
            runsc = find_gvisor(state_dir, network)
            runsc.delete_all()
            uid = self._uids.allocate()
            try:
                runsc.probe(uid)
            finally:
                self._uids.release(uid)  # the sandbox is gone: nothing ran as it on the host
        except SandboxUnavailable as error:
            self._remove_private_state_dir()
            raise BackendUnavailable(f"--sandbox gvisor was asked for, but {error}") from None
        return runsc

    def sandbox_mode(self) -> str:
        """`bwrap`, `gvisor`, or `none (<why>)`."""
        if self._gvisor is not None:
            return "gvisor"
        return "bwrap" if self._sandbox is not None else f"none ({self._why_not})"

    @property
    def own_uids(self) -> bool:
        """Whether each worker runs as a uid of its own (sandboxed, as root)."""
        return self._gvisor is not None or (self._sandbox is not None and self._sandbox.as_root)

    def protections(self) -> dict[str, object]:
        """What confines a worker here, in words an operator can check (JSON-able)."""
        if self._gvisor is not None:
            confinement = self._gvisor.protections(self._uids.base)
        else:
            confinement = self._confinement()
        if self.session_start == "fork":
            confinement["session_start"] = self.session_start_mode()
        if self._limits is not None:
            limits = {"mode": str(self._limits.mode), **self._limits.describe(self.own_uids)}
            if self._gvisor is not None and self._limits.mode is not LimitMode.RLIMIT:
                asked = self._session_limits.pids if self._session_limits is not None else 0
                limits["pids"] += (
                    f": {asked} (--session-pids) + {gvisor.THREADS_HEADROOM} for the threads of gVisor's "
                    "sentry and gofer; a sandbox that reaches it ends"
                )
            confinement["limits"] = limits
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

    def session_start_mode(self) -> str:
        """`fork`, `fresh`, or `fresh (<why not fork>)`."""
        if self.session_start == "fork" and self._forks is None:
            return f"fresh ({self._why_fresh})"
        return self.session_start

    async def start(self, spec: WorkerSpec) -> ProcessWorker:
        """Start the worker and return once its `/ping` answers; `WorkerStartFailed` otherwise."""
        note = ""
        if self.session_start == "fork":
            if self._forks is None or self._spares is None:
                note = self._why_fresh or ""
            else:
                if spec.pooled:
                    # A warm-pool worker, for a session yet to come: a forked one starts in a few ms
                    # of CPU, which would be taken from the session whose arrival asked for it (on
                    # the same cores) just as its first call runs. Let that call go first.
                    await asyncio.sleep(_WARM_START_DEFER)
                try:
                    return await self._start_forked(spec, self._spares)
                except Unforkable as error:
                    note = f"its version cannot be forked: {error}"
                except ForkFailed as error:
                    logger.warning("Worker %s starts fresh: %s", spec.worker_id, error)
                    note = f"its version's fork server failed: {error}"
        return await self._start_fresh(spec, note)

    async def _start_fresh(self, spec: WorkerSpec, note: str) -> ProcessWorker:
        socket_path = spec.work_dir / "worker.sock"
        for path in (socket_path, *([_made_socket(spec)] if self._gvisor is not None else [])):
            if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
                raise WorkerStartFailed(
                    spec.worker_id,
                    f"socket path {path} is longer than {_MAX_SOCKET_PATH} bytes; use a shorter data dir",
                )
        host_uid = self._uids.allocate() if self.own_uids else None
        limits: WorkerLimits | None = None
        sandbox: gvisor.Sandbox | None = None
        try:
            if self._limits is not None:
                limits = await asyncio.to_thread(self._limits.create, spec.worker_id, host_uid is not None)
            if self._gvisor is not None and host_uid is not None:
                launch, log, sandbox = await asyncio.to_thread(self._prepare_gvisor, spec, host_uid)
                prefix = [] if limits is None or self._limits_in_bundle() else limits.command_prefix()
                # runsc's own environment: the worker's is in its bundle.
                environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            else:
                launch, log = await asyncio.to_thread(self._prepare, spec, socket_path, host_uid)
                prefix = limits.command_prefix() if limits is not None else []
                environment = self._environment(spec)
            if note:
                os.write(log, f"[open-agentcore] session started as a fresh process: {note}\n".encode())
            try:
                process = await asyncio.create_subprocess_exec(
                    *prefix,
                    *launch.argv,
                    cwd=spec.code_dir,
                    env=environment,
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
            if sandbox is not None:
                await asyncio.to_thread(oci_bundle.remove, sandbox.bundle)
            if isinstance(error, LimitsUnavailable):
                raise WorkerStartFailed(spec.worker_id, f"its limits could not be set up: {error}") from None
            raise
        worker = ProcessWorker(
            spec.worker_id, process, socket_path, spec.work_dir / "worker.log", self.sandboxed, host_uid,
            limits=limits, gvisor=sandbox, _release_uid=self._uids.release,
        )  # fmt: skip
        try:
            await self._wait_ready(worker, spec.start_timeout, _made_socket(spec))
        except BaseException:
            await self.stop(worker, grace=0)
            raise
        if sandbox is not None:
            await asyncio.to_thread(sandbox.note_processes, process.pid)
        elif self._sandbox is not None:
            worker.agent_pid = process_tree.first_descendant(process.pid, str(spec.python))
        else:
            worker.agent_pid = process.pid
        return worker

    async def _start_forked(self, spec: WorkerSpec, spares: Spares) -> ProcessWorker:
        """Take the version's spare, already forked and under limits of its own (or have the fork
        server fork one now: `Unforkable`, `ForkFailed`), hand it the session, and wait until it serves."""
        socket_path = spec.work_dir / "worker.sock"
        if len(os.fsencode(socket_path)) > _MAX_SOCKET_PATH:
            raise WorkerStartFailed(
                spec.worker_id, f"socket path {socket_path} is longer than {_MAX_SOCKET_PATH} bytes"
            )
        environment = self._environment(spec)
        version_environment = {k: v for k, v in spec.environment.items() if k not in _PER_SESSION_VARIABLES}
        view = None
        if self._sandbox is not None:
            # The same for every session of a version (and checked once): kept, not made per session.
            key = (spec.python, spec.code_dir, tuple(spec.read_only_paths), tuple(spec.hidden_paths))
            view = self._fork_views.get(key)
            if view is None:
                view = dataclasses.replace(
                    await asyncio.to_thread(self._view, spec, ()), home=Path(fork_sandbox.HOME)
                )
                self._fork_views[key] = view
        image = Image(
            spec.python, spec.code_dir, spec.entrypoint, tuple(sorted(version_environment.items())), view
        )
        base = {k: v for k, v in environment.items() if k not in spec.environment}
        order = (spec.work_dir.parent, spec.start_timeout, base)
        try:
            spare = await spares.take(image, *order)
        except (OSError, fork_gate.GateRefused) as error:
            raise WorkerStartFailed(spec.worker_id, f"its start could not be checked: {error}") from None
        try:
            await asyncio.to_thread(_hand_over, spare, spec, socket_path, environment)
        except BaseException as error:
            await asyncio.to_thread(spare.discard)
            if isinstance(error, OSError):
                raise WorkerStartFailed(spec.worker_id, f"its forked worker was gone: {error}") from None
            raise

        async def after_exit() -> None:
            await spares.stop_idle(image)

        sandboxed = self._sandbox is not None
        worker = ProcessWorker(
            spec.worker_id, spare.process, socket_path, spec.work_dir / "worker.log", sandboxed, None,
            limits=spare.limits, started_by="fork", _after_exit=after_exit,
        )  # fmt: skip
        try:
            await self._wait_ready(worker, spec.start_timeout, _made_socket(spec))
        except BaseException:
            await self.stop(worker, grace=0)
            raise
        # Sandboxed, the agent is pid 2 of the session's own pid namespace, the child of its pid 1.
        worker.agent_pid = _agent_of(spare.process.pid) if sandboxed else spare.process.pid
        spares.refill(image, *order)  # now that this one serves: the next session's
        return worker

    def fork_servers(self) -> list[int]:
        """The pids of the fork servers running now."""
        return [server.process.pid for server in self._forks.running()] if self._forks is not None else []

    def spares(self) -> list[int]:
        """The pids of the workers forked ahead of their sessions, waiting now (`fork_spares.py`)."""
        return self._spares.ready() if self._spares is not None else []

    def _limits_in_bundle(self) -> bool:
        """Whether gVisor applies the limits itself (rlimits, in the bundle): a prefix would limit
        runsc, whose address space is far beyond any agent's."""
        return self._limits is not None and self._limits.mode is LimitMode.RLIMIT

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

    def _prepare_gvisor(self, spec: WorkerSpec, host_uid: int) -> tuple[Launch, int, gvisor.Sandbox]:
        """Everything before a gVisor worker starts (blocking): its work dir (with a dir of its own for
        the socket it makes), its bundle, its log, and the `runsc run` command."""
        assert self._gvisor is not None
        made = _made_socket(spec)
        home = spec.work_dir / "home"
        # Its temp dir is the sandbox's own /tmp, in its memory: there, unlike on the host dirs the
        # gofer serves, unix sockets can be chmod-ed (multiprocessing's forkserver does).
        view = self._view(spec, writable=(home, made.parent))
        work_dir.prepare(spec.work_dir, host_uid, own=(home.name, made.parent.name))
        made.unlink(missing_ok=True)
        (spec.work_dir / "worker.sock").unlink(missing_ok=True)
        bundle = spec.work_dir / "bundle"
        oci_bundle.remove(bundle)  # a previous start's
        command = [
            str(spec.python), str(LAUNCHER), "--code-dir", str(spec.code_dir),
            "--entrypoint", spec.entrypoint, "--bind-socket", str(made), "--worker-id", spec.worker_id,
        ]  # fmt: skip
        rlimits: dict[str, int] = {}
        if self._limits_in_bundle() and self._session_limits is not None:
            rlimits = {
                "RLIMIT_AS": self._session_limits.memory_bytes,
                "RLIMIT_NPROC": self._session_limits.pids,
            }
        environment = {**self._environment(spec), "TMPDIR": "/tmp"}  # noqa: S108 - the sandbox's
        process = oci_bundle.Process(command, environment, host_uid, spec.code_dir, rlimits)
        self._gvisor.write_bundle(bundle, view, process)
        sandbox = gvisor.Sandbox(self._gvisor, spec.worker_id, bundle)
        try:
            log = work_dir.open_log(spec.work_dir / "worker.log")
        except BaseException:
            oci_bundle.remove(bundle)
            raise
        return Launch(self._gvisor.run_command(bundle, spec.worker_id), ()), log, sandbox

    def _view(self, spec: WorkerSpec, writable: Sequence[Path] | None = None) -> SandboxView:
        """What the worker sees (asks the interpreter once; checks the permissions it needs);
        `writable`: its home and tmp unless given."""
        interpreter = interpreter_paths(str(spec.python))
        read_only = (*interpreter, spec.code_dir, *spec.read_only_paths, LAUNCHER.parent)
        for path in read_only:
            for hidden in spec.hidden_paths:
                if path == hidden or path in hidden.parents:
                    raise WorkerStartFailed(
                        spec.worker_id, f"{path} cannot be shown to workers: it holds {hidden}"
                    )
        if self.own_uids:
            # The worker's uid is nobody's: what it must read has to be readable by all.
            needed = [(path, False) for path in (*read_only, LAUNCHER)]
            for path, executable in [*needed, (Path(os.path.realpath(spec.python)), True)]:
                if problem := unreadable_by_others(path, executable):
                    raise WorkerStartFailed(spec.worker_id, problem)
        home = spec.work_dir / "home"
        if writable is None:
            writable = (home, spec.work_dir / "tmp")
        return SandboxView(read_only, writable=writable, chdir=spec.code_dir, home=home)

    async def _wait_ready(self, worker: ProcessWorker, timeout: float, made_socket: Path) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        exited = loop.create_task(worker.process.wait())
        # A gVisor worker makes its socket itself; the server's link to it exists once it is taken.
        adopted = worker.gvisor is None
        refused: list[str] = []  # why a socket that is there was not taken (yet)
        try:
            while True:
                remaining = deadline - loop.time()
                if not adopted:
                    adopted = await _adopt_socket(worker, made_socket, refused)
                # The socket listens from the start: a ping waits in its backlog until the agent serves.
                probe: asyncio.Task[int | None] = loop.create_task(
                    ping(worker.socket_path) if adopted else _nothing()
                )
                await asyncio.wait(
                    {probe, exited}, timeout=max(remaining, 0), return_when=asyncio.FIRST_COMPLETED
                )
                if exited.done():
                    await _cancel(probe)
                    raise WorkerStartFailed(
                        worker.worker_id,
                        f"the agent exited with code {worker.process.returncode} before it was ready: "
                        + _last_line(worker.log_path),
                        _tail(worker.log_path),
                    )
                answered = probe.done() and not probe.cancelled() and probe.exception() is None
                if answered and probe.result() == 200:
                    return
                await _cancel(probe)
                if loop.time() >= deadline:
                    raise WorkerStartFailed(
                        worker.worker_id,
                        f"its socket was refused: {refused[-1]}"
                        if refused and not adopted
                        else f"the agent did not answer /ping within {timeout:g}s",
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
        if handle.gvisor is not None:
            assert isinstance(process, asyncio.subprocess.Process)
            await handle.gvisor.stop(process, grace)
        elif process.returncode is None:
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
        if isinstance(handle, ProcessWorker) and self._pids_exhausted(handle):
            asked = self._session_limits.pids if self._session_limits is not None else 0
            return (
                f"the session reached its limit of {asked} processes and threads (--session-pids) and its "
                "gVisor sandbox ended"
            )
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"worker killed by {signal.Signals(-code).name}"
        if 128 < code < 160:  # bubblewrap and runsc report their child's death by signal N as 128 + N
            with contextlib.suppress(ValueError):
                return f"worker exited with code {code} ({signal.Signals(code - 128).name})"
        return f"worker exited with code {code}"

    def _pids_exhausted(self, worker: ProcessWorker) -> bool:
        """Whether a gVisor worker reached its pids limit, which ends its sandbox (bubblewrap's agent
        gets EAGAIN and goes on)."""
        peak = worker.peak_pids
        return self._limits is not None and peak is not None and peak >= self._limits.limits.pids

    def close(self) -> None:
        """Remove this server's cgroups and private runsc state (at shutdown, once every worker has
        stopped)."""
        if self._limits is not None:
            self._limits.close()
        if self._spares is not None:
            self._spares.close_now()
        if self._forks is not None:
            self._forks.close_now()
        for uid in self._fork_uids.values():  # the versions' fork servers and anything they left
            if process_tree.kill_all_of(uid):
                self._uids.release(uid)
        self._fork_uids.clear()
        self._remove_private_state_dir()

    def _remove_private_state_dir(self) -> None:
        if self._private_state_dir is not None:
            shutil.rmtree(self._private_state_dir, ignore_errors=True)
            self._private_state_dir = None


def _hand_over(spare: Spare, spec: WorkerSpec, socket_path: Path, environment: Mapping[str, str]) -> None:
    """Make a forked worker's work dir, listening socket and log, and give them to the spare that
    becomes it (blocking)."""
    work_dir.prepare(spec.work_dir, None)
    listener = work_dir.listen(socket_path)
    try:
        log = work_dir.open_log(spec.work_dir / "worker.log")
        try:
            os.write(log, b"[open-agentcore] session forked by its version's fork server\n")
            spare.hand_over(spec.worker_id, environment, spec.code_dir, listener, log)
        finally:
            os.close(log)
    finally:
        os.close(listener)


def _agent_of(forked: int) -> int | None:
    """The agent's process in a sandboxed forked worker: the first child of its pid 1."""
    return next(iter(process_tree.children(forked)), None)


def _made_socket(spec: WorkerSpec) -> Path:
    """Where a gVisor worker makes its socket: in a dir of its own, beside nothing the server uses."""
    return spec.work_dir / "sock" / "worker.sock"


async def _adopt_socket(worker: ProcessWorker, made: Path, refused: list[str]) -> bool:
    """Link the socket a gVisor worker made to `worker.socket_path`; False while it has not made it
    or it is not yet the worker's (the reason is added to `refused`). `WorkerStartFailed` if what is
    there is not a socket at all."""
    assert worker.host_uid is not None
    try:
        return await asyncio.to_thread(work_dir.adopt_socket, made, worker.socket_path, worker.host_uid)
    except work_dir.ForeignSocket as error:
        refused[:] = [str(error)]
        return False
    except (work_dir.UnsafeSocket, OSError) as error:
        raise WorkerStartFailed(
            worker.worker_id, f"its socket was refused: {error}", _tail(worker.log_path)
        ) from None


async def _nothing() -> None:
    await asyncio.sleep(0.01)


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
    pid namespace, and with it every process the agent started, down with it. Under gVisor it is
    `runsc run`'s, and the sandbox is deleted from the state dir its command line names.
    """
    arguments = process_tree.cmdline(pid)
    if gvisor.is_runsc_run(arguments, worker_id):
        gvisor.delete_orphan(arguments, worker_id)
        _signal_group(pid, signal.SIGKILL)
        return True
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


__all__ = [
    "LAUNCHER",
    "SANDBOXES",
    "SESSION_STARTS",
    "ProcessBackend",
    "ProcessWorker",
    "kill_orphan",
    "probe_bwrap",
]
