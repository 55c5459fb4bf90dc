"""What runs on a Ray node for one session: the actor that gets the code there, builds or reuses
its environment, and starts and owns the session's sandboxed worker.

Ray places one `SessionActor` per session, reserving the session's CPUs and memory on the node it
picks. The actor is trusted code of ours (it runs in Ray's worker process, as the node's user);
the agent runs only in the worker it starts, in the same sandbox as the process backend's, on a
TCP port of the node that answers only requests carrying its secret.

Nothing is shared between nodes but Ray: the code arrives as a tar archive, in parts carried as
the arguments of calls to the actor (never through Ray's object store: see
`RayBackend._send_code`), checked against its SHA-256 before it is unpacked, into a cache per node
keyed by that hash; the environment is built there with uv and cached by its own hash. The second session of a
version on a node finds both and starts warm.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .base import SessionLimits, WorkerAddress, WorkerSpec, WorkerStartFailed
from .process_worker import ProcessWorker
from .tcp_worker import TcpProcessBackend

_LOG_LIMIT = 1024 * 1024  # what a stopping worker's log sends back to the server, at most


class BuiltEnvironmentLike(Protocol):
    """An environment ready to run the worker (`artifacts.BuiltEnvironment`)."""

    @property
    def python(self) -> Path: ...

    @property
    def root(self) -> Path | None: ...


class EnvironmentBuilding(Protocol):
    """Builds or reuses environments under one cache dir (`artifacts.EnvironmentBuilder`)."""

    def build(self, code_dir: Path, log_path: Path, python: Path | None = None) -> BuiltEnvironmentLike: ...


@dataclass(frozen=True)
class NodeSettings:
    """How every node confines and places workers (the server's flags), sent to each actor.

    `environments`: makes the builder for a cache dir (the server passes
    `artifacts.EnvironmentBuilder`; backends do not import the artifacts layer). `node_root`: where
    each node keeps its code and environment caches and its workers' dirs, one subdir per node
    (None: `~/.agentcore/ray-node` of the node's user). It must be that user's own and writable
    by no one else: the code workers run is read from it.
    """

    sandbox: str
    network: str
    uid_base: int
    limits: SessionLimits | None
    node_root: Path | None
    environments: Callable[[Path], EnvironmentBuilding]
    hidden_paths: Sequence[Path] = ()


@dataclass(frozen=True)
class StartRequest:
    """One worker to start on the node: `code_hash` names the archive of its code."""

    worker_id: str
    code_hash: str
    entrypoint: str
    environment: Mapping[str, str] = field(default_factory=dict)
    start_timeout: float = 60.0


@dataclass(frozen=True)
class Started:
    """A worker the actor started: where it listens, and whether the node had its code and
    environment cached already (`warm`)."""

    node_id: str
    address: WorkerAddress
    pid: int
    sandboxed: bool
    sandbox: str
    warm: bool


class SessionActor:
    """A Ray actor (async): one session's worker on the node Ray placed it on.

    The RayBackend makes it with `ray.remote(SessionActor).options(num_cpus=..., memory=...)`.
    """

    def __init__(self, settings: NodeSettings) -> None:
        self._settings = settings
        self._backend: TcpProcessBackend | None = None
        self._worker: ProcessWorker | None = None
        self._archive: bytearray | None = None  # the code, as its parts arrive (on a cache miss)
        self._node_id, self._node_ip = _node()
        base = settings.node_root or Path.home() / ".agentcore" / "ray-node"
        self._root = base / self._node_id[:16]
        _own_dir(base)
        _own_dir(self._root)

    async def node(self) -> str:
        """The id of the node Ray placed this actor on (answers once the actor is placed)."""
        return self._node_id

    async def lacks_code(self, code_hash: str) -> bool:
        """Whether this node's cache lacks the code: the server then sends it (`take_code`)."""
        return not (self._root / "code" / code_hash).is_dir()

    async def take_code(self, code_hash: str, offset: int, part: bytes, size: int) -> None:
        """One part of the code's archive of `size` bytes, at `offset` (parts may come in any order)."""
        if self._archive is None:
            self._archive = bytearray(size)
        if len(self._archive) != size or offset < 0 or offset + len(part) > size:
            raise WorkerStartFailed("-", f"a part of code {code_hash[:12]} does not fit its archive")
        self._archive[offset : offset + len(part)] = part

    async def start(self, request: StartRequest) -> Started:
        """Start the worker, from the node's cached code or the archive just sent (`take_code`)."""
        code_dir = self._root / "code" / request.code_hash
        warm = code_dir.is_dir()
        if not warm:
            if self._archive is None:
                raise WorkerStartFailed(request.worker_id, "its code never reached the node")
            archive, self._archive = bytes(self._archive), None
            await asyncio.to_thread(_unpack, archive, request.code_hash, code_dir, request.worker_id)
        work_dir = self._root / "w" / request.worker_id
        built, env_warm = await asyncio.to_thread(self._environment, code_dir, work_dir)
        settings = self._settings
        backend = self._backend = await asyncio.to_thread(
            TcpProcessBackend, self._node_ip, settings.sandbox, network=settings.network,
            uid_base=settings.uid_base, limits=settings.limits,
        )  # fmt: skip
        spec = WorkerSpec(
            worker_id=request.worker_id,
            python=built.python,
            code_dir=code_dir,
            entrypoint=request.entrypoint,
            work_dir=work_dir,
            environment={**request.environment, "AGENTCORE_NODE_ID": self._node_id},
            read_only_paths=tuple(p for p in (built.root,) if p is not None),
            hidden_paths=tuple(settings.hidden_paths),
            start_timeout=request.start_timeout,
        )
        self._worker, address = await backend.start_tcp(spec)
        worker = self._worker
        mode = backend.sandbox_mode()
        return Started(self._node_id, address, worker.pid, backend.sandboxed, mode, warm and env_warm)

    def _environment(self, code_dir: Path, work_dir: Path) -> tuple[BuiltEnvironmentLike, bool]:
        log_path = work_dir.with_name(f"{work_dir.name}.build.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            built = self._settings.environments(self._root / "cache").build(code_dir, log_path)
            warm = "cached" in log_path.read_text(errors="replace") or built.root is None
        except Exception as error:  # the builder's own failure types live above this layer
            reason = f"its environment could not be built on the node: {error}"
            raise WorkerStartFailed(work_dir.name, reason) from None
        finally:
            log_path.unlink(missing_ok=True)
        return built, warm

    async def wait(self) -> tuple[int, str]:
        """Once the worker has exited: its exit code and why it ended, in the node's words."""
        if self._worker is None or self._backend is None:
            return -1, "the worker never started"
        code = await self._worker.wait_exit()
        return code, self._backend.exit_reason(self._worker, code)

    async def stop(self, grace: float) -> bytes:
        """Stop the worker (as the process backend does), remove its dir; returns its log's end."""
        log = b""
        if self._worker is not None and self._backend is not None:
            await self._backend.stop(self._worker, grace)
            log = await asyncio.to_thread(_log_end, self._worker.log_path)
            await asyncio.to_thread(shutil.rmtree, self._worker.log_path.parent, True)
            await asyncio.to_thread(self._backend.close)
        return log


def _node() -> tuple[str, str]:
    import ray  # on the node: Ray is there, it runs this actor

    context = ray.get_runtime_context()
    return str(context.get_node_id()), str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


def _unpack(archive: bytes, expected: str, code_dir: Path, worker_id: str) -> None:
    """Check the archive's hash, then unpack it into `code_dir` (made whole, or not at all)."""
    if hashlib.sha256(archive).hexdigest() != expected:
        raise WorkerStartFailed(worker_id, "the code that reached the node does not match its hash")
    _own_dir(code_dir.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{expected[:12]}.", dir=code_dir.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            tar.extractall(staging, filter="data")  # refuses links and paths that leave it
        staging.chmod(0o755)
        try:
            staging.rename(code_dir)
        except OSError:
            if not code_dir.is_dir():  # another session's actor unpacked it first: that is the same code
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pack_code(code_dir: Path) -> bytes:
    """A tar archive of the code dir that depends only on its files (names, modes, contents)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(code_dir.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue  # the unpacked artifact has none; never follow one out of the dir
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(code_dir)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with path.open("rb") as source:
                    tar.addfile(info, source)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _own_dir(path: Path) -> None:
    """Make `path` (0755: workers of their own uid read the code under it), or check that the one
    there is ours and writable by no one else; `WorkerStartFailed` otherwise."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise WorkerStartFailed(
            "-", f"{path} on the Ray node must be a dir of the node's user that no one else may write"
        )


def _log_end(path: Path) -> bytes:
    try:
        with path.open("rb") as log:
            log.seek(max(0, path.stat().st_size - _LOG_LIMIT))
            return log.read()
    except OSError:
        return b""


__all__ = [
    "BuiltEnvironmentLike",
    "EnvironmentBuilding",
    "NodeSettings",
    "SessionActor",
    "StartRequest",
    "Started",
    "pack_code",
]
