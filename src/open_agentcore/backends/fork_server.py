"""Fork servers: one process per runtime version that has imported the agent once and forks a
worker per new session (`fork_main.py` is its side).

A forked worker skips the interpreter's start and the agent's import, and shares the pages they
filled with its siblings until one writes to them (copy on write): a new session in milliseconds
and less memory per idle session. A version whose import starts threads or leaves files open is
*unforkable*: `ForkServers.fork` raises `Unforkable` and the backend starts its sessions as fresh
processes, saying why in each one's log.

A fork server lives while its version has workers: it is stopped with its last one, and one that
crashed is started again for the next session; its children are not its to take along (they end
with the server itself, through the lifeline, or when stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import fork_main, work_dir
from .limits import WorkerLimits
from .sandbox import Launch, SandboxView

logger = logging.getLogger("open_agentcore.backends.fork_server")

FORK_MAIN = Path(fork_main.__file__).resolve()
_STOP_WAIT = 5.0


class Unforkable(Exception):
    """This version cannot be forked safely; the message says why (for the session's log)."""


class ForkFailed(Exception):
    """The fork server could not start, or could not fork this worker; the message says why."""


@dataclass(frozen=True)
class Image:
    """What a fork server holds imported: one version's interpreter, code and environment."""

    python: Path
    code_dir: Path
    entrypoint: str
    environment: tuple[tuple[str, str], ...]
    # What its sandbox shows it, when sessions are sandboxed (the same for every session of it).
    view: SandboxView | None = field(default=None, compare=False)

    @property
    def digest(self) -> str:
        key = (self.python, self.code_dir, self.entrypoint, self.environment)
        return hashlib.sha256(repr(key).encode()).hexdigest()[:12]


class ForkedProcess:
    """A worker the fork server forked: as much of `asyncio.subprocess.Process` as the backend
    uses (`pid`, `returncode`, `wait()`). Not the server's child: its end is reported by the fork
    server, or, once that has gone, seen through a pidfd (its code then unknown: -1).

    `pid` is in the server's pid namespace: the kernel's word for it (`attach`, from the child's
    credentials on its gate), never the fork server's, which is in a namespace of its own when
    sandboxed (`ns_pid`: what the fork server calls it)."""

    def __init__(self, ns_pid: int, server: ForkServer) -> None:
        self.ns_pid = ns_pid
        self.pid = ns_pid
        self._server = server
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pidfd: int | None = None

    def attach(self, pid: int) -> None:
        """The child's pid as the kernel gave it to the server."""
        self.pid = pid
        with contextlib.suppress(OSError):
            self._pidfd = os.pidfd_open(pid)

    @property
    def forked_by_live_server(self) -> bool:
        """Whether the fork server that forked it still runs (and reports its end)."""
        return self._server.alive()

    @property
    def returncode(self) -> int | None:
        return self._exit.result() if self._exit.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def exited(self, code: int) -> None:
        if not self._exit.done():
            self._exit.set_result(code)
        self._close_pidfd()
        self._server.child_gone(self)

    def orphaned(self) -> None:
        """The fork server is gone: learn of this worker's end from its pidfd."""
        if self._exit.done():
            return
        if self._pidfd is None:
            self.exited(-1)
            return
        asyncio.get_running_loop().add_reader(self._pidfd, self.exited, -1)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None


@dataclass
class ForkServer:
    """One version's fork server process and its control channel."""

    image: Image
    process: asyncio.subprocess.Process
    control: socket.socket
    children: dict[int, ForkedProcess] = field(default_factory=dict)
    pending: dict[str, asyncio.Future[ForkedProcess]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    closing: bool = False
    # Its own limits (a session's): the agent's import runs in it, and must not take the server's room.
    limits: WorkerLimits | None = None
    # Its own dir (home, tmp, log), removed once it has stopped.
    home: Path | None = None

    def alive(self) -> bool:
        return self.process.returncode is None and not self.closing

    def fork(self, name: str, gate: int) -> asyncio.Future[ForkedProcess]:
        """Ask for a child waiting at `gate` (`fork_gate.py`); the future is its process. Pending from
        this call on, so the fork server is not stopped as idle meanwhile."""
        answer: asyncio.Future[ForkedProcess] = asyncio.get_running_loop().create_future()
        request = json.dumps({"fork": name})
        try:
            socket.send_fds(self.control, [request.encode()], [gate])
        except OSError as error:  # a full channel too: the fork server is not keeping up
            raise ForkFailed(f"the fork server cannot be reached: {error}") from None
        self.pending[name] = answer
        answer.add_done_callback(lambda _: self.pending.pop(name, None))
        return answer

    def child_gone(self, child: ForkedProcess) -> None:
        self.children.pop(child.ns_pid, None)

    async def read(self) -> None:
        """Dispatch the fork server's messages until it closes the channel or exits."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(self.control, fork_main.MAX_MESSAGE)
                if not data:
                    break
                self._dispatch(json.loads(data))
        except (OSError, ValueError) as error:
            logger.warning("The fork server of %s stopped answering: %s", self.image.code_dir, error)
        finally:
            self.closing = True
            if not loop.is_closed() and loop.is_running():
                for answer in self.pending.values():
                    if not answer.done():
                        answer.set_exception(ForkFailed("the fork server exited"))
                for child in list(self.children.values()):
                    child.orphaned()
            # else: destroyed with its loop, at shutdown; nothing waits for these ends any more

    def _dispatch(self, message: dict[str, object]) -> None:
        if "forked" in message:
            answer = self.pending.get(str(message["forked"]))
            pid = message.get("pid")
            if isinstance(pid, int):
                # Known before its end can be reported, even when its caller gave up waiting.
                child = self.children[pid] = ForkedProcess(pid, self)
                if answer is not None and not answer.done():
                    answer.set_result(child)
        elif "fork_failed" in message:
            answer = self.pending.get(str(message["fork_failed"]))
            if answer is not None and not answer.done():
                answer.set_exception(ForkFailed(str(message.get("error"))))
        elif "exited" in message:
            pid, code = message.get("exited"), message.get("code")
            ended = self.children.get(pid) if isinstance(pid, int) else None
            if ended is not None and isinstance(code, int):
                ended.exited(code)

    async def stop(self) -> None:
        """Close the channel (the fork server exits; its children go on), and wait for it."""
        self.closing = True
        with contextlib.suppress(OSError):
            self.control.shutdown(socket.SHUT_RDWR)
        try:
            await asyncio.wait_for(self.process.wait(), _STOP_WAIT)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
        if self.reader is not None:
            await self.reader
        self.control.close()
        if self.limits is not None:
            await asyncio.to_thread(self.limits.close)
        if self.home is not None:
            await asyncio.to_thread(shutil.rmtree, self.home, True)


class ForkServers:
    """The fork servers of every version, started on a version's first forked session."""

    def __init__(
        self, limiter: Callable[[str], WorkerLimits] | None = None, work_root_name: str = "fork",
        confine: Callable[[Image, list[str]], Launch] | None = None,
    ) -> None:  # fmt: skip
        """`limiter`: the limits of one worker, by id (a fork server runs under a session's).
        `confine`: the sandbox command around a fork server's own (blocking; its fds are passed to
        it), when sessions are sandboxed: the fork server then has each child enter a sandbox."""
        self._limiter = limiter
        self._confine = confine
        self._servers: dict[Image, ForkServer] = {}
        self._starting: dict[Image, asyncio.Lock] = {}
        self._unforkable: dict[Image, str] = {}
        self._subdir = work_root_name
        # Only the server holds the write end: when it is gone, every forked worker sees the end.
        self._lifeline_read, self._lifeline_write = os.pipe()

    def unforkable_reason(self, image: Image) -> str | None:
        return self._unforkable.get(image)

    def server_pid(self, image: Image) -> int | None:
        """The pid of `image`'s fork server (its outermost process, in the server's namespace)."""
        server = self._servers.get(image)
        return server.process.pid if server is not None else None

    def running(self) -> list[ForkServer]:
        return [server for server in self._servers.values() if server.alive()]

    async def fork(
        self, image: Image, name: str, work_root: Path, gate: int, timeout: float,
        base_environment: Mapping[str, str],
    ) -> ForkedProcess:  # fmt: skip
        """Fork a child of `image` waiting at `gate` for its limits and its session (its fork server
        started first if need be); `Unforkable`, `ForkFailed`."""
        if (reason := self._unforkable.get(image)) is not None:
            raise Unforkable(reason)
        server = await self._server(image, work_root, timeout, base_environment)
        answer = server.fork(name, gate)  # no await since the lookup
        try:
            return await asyncio.wait_for(answer, timeout)
        except asyncio.TimeoutError:
            raise ForkFailed(f"the fork server did not fork within {timeout:g}s") from None

    async def _server(
        self, image: Image, work_root: Path, timeout: float, base_environment: Mapping[str, str]
    ) -> ForkServer:
        lock = self._starting.setdefault(image, asyncio.Lock())
        async with lock:
            server = self._servers.get(image)
            if server is not None and server.alive():
                return server
            if server is not None:
                logger.warning("The fork server of %s had exited; starting another", image.code_dir)
                await server.stop()
            if (reason := self._unforkable.get(image)) is not None:
                raise Unforkable(reason)
            server = await self._start(
                image, work_root / f"{self._subdir}-{image.digest}", timeout, base_environment
            )
            self._servers[image] = server
            return server

    async def _start(
        self, image: Image, home: Path, timeout: float, base_environment: Mapping[str, str]
    ) -> ForkServer:
        await asyncio.to_thread(work_dir.prepare, home, None)
        limits = await asyncio.to_thread(self._limiter, home.name) if self._limiter is not None else None
        try:
            return await self._launch(image, home, timeout, base_environment, limits)
        except BaseException:
            if limits is not None:
                await asyncio.to_thread(limits.close)
            raise

    async def _launch(
        self, image: Image, home: Path, timeout: float, base_environment: Mapping[str, str],
        limits: WorkerLimits | None,
    ) -> ForkServer:  # fmt: skip
        log = await asyncio.to_thread(work_dir.open_log, home / "fork-server.log")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        environment = {
            **base_environment,
            **dict(image.environment),
            "HOME": str(home / "home"),
            "TMPDIR": str(home / "tmp"),
        }
        prefix = limits.command_prefix() if limits is not None else []
        command = [
            str(image.python), str(FORK_MAIN), "--code-dir", str(image.code_dir),
            "--entrypoint", image.entrypoint, "--control-fd", str(theirs.fileno()),
            "--lifeline-fd", str(self._lifeline_read),
        ]  # fmt: skip
        launch = Launch(command, ())
        try:
            if self._confine is not None:
                launch = await asyncio.to_thread(self._confine, image, command)
                environment.update({"HOME": "/tmp", "TMPDIR": "/tmp"})  # noqa: S108 - the sandbox's own
            process = await asyncio.create_subprocess_exec(
                *prefix, *launch.argv,
                cwd=image.code_dir, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, pass_fds=(theirs.fileno(), self._lifeline_read, *launch.fds),
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            launch.close()
            theirs.close()
            os.close(log)
        ours.setblocking(False)
        server = ForkServer(image, process, ours, limits=limits, home=home)
        loop = asyncio.get_running_loop()
        try:
            first = await asyncio.wait_for(loop.sock_recv(ours, fork_main.MAX_MESSAGE), timeout)
            message = json.loads(first) if first else {"failed": _last_line(home / "fork-server.log")}
        except (asyncio.TimeoutError, ValueError, OSError) as error:
            message = {"failed": f"it did not say it was ready ({type(error).__name__})"}
        if "ready" in message:
            server.reader = loop.create_task(server.read())
            logger.info("Fork server of %s started (pid %d)", image.code_dir, process.pid)
            return server
        server.limits = None  # the caller closes them
        await server.stop()
        if "unforkable" in message:
            reason = str(message["unforkable"])
            self._unforkable[image] = reason
            raise Unforkable(reason)
        raise ForkFailed(f"the fork server failed to start: {message.get('failed')}")

    def idle(self, image: Image, besides: Collection[int] = ()) -> bool:
        """Whether the version's fork server has no child but those in `besides` (pids in its own
        namespace) and none coming."""
        server = self._servers.get(image)
        return server is not None and not server.pending and not set(server.children) - set(besides)

    async def stop_idle(self, image: Image, besides: Collection[int] = ()) -> None:
        """Stop the version's fork server once it has no child left but those in `besides` (spares
        being discarded)."""
        lock = self._starting.setdefault(image, asyncio.Lock())
        async with lock:
            server = self._servers.get(image)
            if server is not None and self.idle(image, besides):
                del self._servers[image]
                await server.stop()

    def close_now(self) -> None:
        """Kill every fork server and let go of the lifeline (at shutdown, once every worker is
        stopped: a forked worker still running sees the lifeline end and stops)."""
        for server in self._servers.values():
            server.closing = True
            with contextlib.suppress(ProcessLookupError):
                server.process.kill()
            server.control.close()
            if server.limits is not None:
                server.limits.close()
            if server.home is not None:
                shutil.rmtree(server.home, ignore_errors=True)
        self._servers.clear()
        for fd in (self._lifeline_read, self._lifeline_write):
            with contextlib.suppress(OSError):
                os.close(fd)


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no output)"
    return lines[-1] if lines else "(no output)"


__all__ = ["FORK_MAIN", "ForkFailed", "ForkServer", "ForkServers", "ForkedProcess", "Image", "Unforkable"]
