"""The fork server's own side: import one version's agent once, then fork a child per new session.

Run BY PATH with the version's python, like `worker_main.py` (only the standard library and
uvicorn are there):
    python fork_main.py --code-dir DIR --entrypoint agent.py --control-fd 3 --lifeline-fd 4

The control fd is a SOCK_SEQPACKET socket to the runtime server; one JSON object per packet.
This process says `{"ready": pid}` once the agent is imported, `{"unforkable": why}` when the
import left threads or open files behind (a fork would copy threads half-way and share the files
between sessions: the server then starts that version's sessions as fresh processes), or
`{"failed": why}`. Then each `{"fork": name}`, sent with one fd (a gate, `fork_gate.py`), is
answered with `{"forked": name, "pid": pid}`, and each child's end with `{"exited": pid, "code": code}`.

A child becomes its own process group, keeps only its stdio, its gate and the lifeline, and waits
for one byte on its gate: the server first puts it under its limits. Sandboxed, it then builds its
sandbox. Either way it then waits on the gate for its session, which may come much later (a spare,
`fork_spares.py`): the server sends the session's environment, working dir, listening socket and
log straight to it, never through this process. Only then does the agent's code run for the
session (having reseeded `random`). It stops when the lifeline (a pipe only the server can write)
reaches its end, i.e. when the server is gone, but not when this process dies: a crashed fork
server takes no session with it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import selectors
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, NoReturn

try:
    from . import fork_gate, fork_sandbox, worker_main
except ImportError:  # run by path, as the server does: this file's dir is on sys.path
    import fork_gate  # type: ignore[no-redef,import-not-found]
    import fork_sandbox  # type: ignore[no-redef,import-not-found]
    import worker_main  # type: ignore[no-redef,import-not-found]

EXIT_START_FAILED = 3
MAX_MESSAGE = 256 * 1024
_CHILD_FDS = 1  # its gate


def send(control: socket.socket, message: dict[str, Any]) -> None:
    control.send(json.dumps(message).encode())


def open_fds() -> set[int]:
    """The file descriptors this process holds now."""
    listed = {int(name) for name in os.listdir("/proc/self/fd")}
    held = set()
    for fd in listed:  # one of them was listdir's own, closed by now
        try:
            os.fstat(fd)
        except OSError:
            continue
        held.add(fd)
    return held


def unforkable(fds_before: set[int]) -> str | None:
    """Why the imported agent cannot be forked safely, or None."""
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1 or threading.active_count() > 1:
        started = max(threads, threading.active_count()) - 1
        return f"its import started {started} thread(s), which a fork cannot copy"
    left_open = open_fds() - fds_before
    if left_open:
        return f"its import left {len(left_open)} file(s) open, which forked sessions would share"
    return None


def preload(app: Any, graceful_seconds: int) -> Any:
    """uvicorn's config for the children, loaded: what serving needs (uvicorn, its protocols, its
    lifespan) imported and the app wrapped once, not in every child. Loading binds nothing and
    starts nothing; each child sets its own socket."""
    config = worker_main.server_config(app, {"fd": -1}, graceful_seconds)
    config.load()
    loop_factory = getattr(config, "get_loop_factory", None)  # uvicorn >= 0.36 picks its loop here
    if loop_factory is not None:
        loop_factory()  # imports uvloop where it is installed: 20 ms a child need not spend
    else:
        config.setup_event_loop()
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Import an agent once and fork a worker per session.")
    parser.add_argument("--code-dir", type=Path, required=True)
    parser.add_argument("--entrypoint", required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--lifeline-fd", type=int, required=True)
    parser.add_argument("--graceful-seconds", type=int, default=10)
    parser.add_argument("--seccomp-fd", type=int, help="sandboxed: each session's seccomp filter")
    parser.add_argument("--own-seccomp-fd", type=int, help="sandboxed: this process's seccomp filter")
    parser.add_argument("--no-network", action="store_true", help="sandboxed: sessions get no network")
    parser.add_argument("--reaper-fd", type=int, help="sandboxed: the program each session's pid 1 becomes")
    args = parser.parse_args(argv)
    worker_main.die_with_parent()
    control = socket.socket(fileno=args.control_fd)
    sandbox: Sandbox | None = None
    if args.seccomp_fd is not None:
        with os.fdopen(args.seccomp_fd, "rb") as program:
            sandbox = Sandbox(program.read(), network=not args.no_network, reaper=args.reaper_fd)
        if args.reaper_fd is not None:
            os.set_inheritable(args.reaper_fd, False)  # its exec, by descriptor, closes it
    if args.own_seccomp_fd is not None:
        # Before the agent's import runs anything: all of a worker's filter but what the children
        # need to make their sandboxes.
        with os.fdopen(args.own_seccomp_fd, "rb") as program:
            fork_sandbox.install_filter(program.read())
    fds_before = open_fds()
    try:
        app = worker_main.find_app(worker_main.load_entrypoint(args.code_dir, args.entrypoint))
    except worker_main.LaunchError as error:
        send(control, {"failed": str(error)})
        return EXIT_START_FAILED
    except BaseException as error:  # the agent's own import-time failure, whatever it is
        traceback.print_exc()
        send(control, {"failed": f"{type(error).__name__}: {error}"})
        return EXIT_START_FAILED
    config = preload(app, args.graceful_seconds)
    worker_main.preload_tracing()  # before the check: the import must not leave threads behind either
    reason = unforkable(fds_before)
    if reason is not None:
        send(control, {"unforkable": reason})
        return 0
    # Objects made so far stay out of every collection: a child's GC pass would otherwise write to
    # (and so unshare) the pages they sit on.
    gc.freeze()
    send(control, {"ready": os.getpid()})
    return ForkLoop(control, config, args.lifeline_fd, sandbox).run()


class Sandbox:
    """What each session enters before its agent runs (`fork_sandbox.py`): the seccomp filter and
    whether it keeps the fork server's network."""

    def __init__(self, program: bytes, network: bool, reaper: int | None = None) -> None:
        self.confinement = fork_sandbox.Confinement(program)  # made once, before any fork
        self.network = network
        self.reaper = reaper  # `reaper.py`'s program, or None: the pid 1 stays this interpreter


class ForkLoop:
    """Waits for fork requests and children's ends; single-threaded, so forking copies no lock held."""

    def __init__(
        self, control: socket.socket, config: Any, lifeline: int, sandbox: Sandbox | None = None
    ) -> None:
        self.control = control
        self.sandbox = sandbox
        self.workers: dict[int, str] = {}
        self.intermediates: set[int] = set()  # sandboxed: children gone once they forked a session
        if sandbox is not None:
            fork_sandbox.become_subreaper()  # each session's pid 1 is this process's to reap
        self.config = config  # uvicorn's, loaded
        self.lifeline = lifeline
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        os.set_blocking(self.wake_read, False)
        self.selector = selectors.DefaultSelector()

    def run(self) -> int:
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.selector.register(self.control, selectors.EVENT_READ)
        self.selector.register(self.wake_read, selectors.EVENT_READ)
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.control:
                    if not self._serve_request():
                        return 0  # the server closed the channel: stop; the children go on
                else:
                    while True:
                        try:
                            if not os.read(self.wake_read, 512):
                                break
                        except BlockingIOError:
                            break
                    self._reap()

    def _serve_request(self) -> bool:
        data, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, _CHILD_FDS)
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        request = json.loads(data)
        if len(fds) != _CHILD_FDS:
            for fd in fds:
                os.close(fd)
            send(self.control, {"fork_failed": request.get("fork"), "error": "expected its gate"})
            return True
        sys.stdout.flush()
        sys.stderr.flush()
        # Sandboxed, the child forks the session's pid 1 and exits: the pid 1 is the worker, and
        # the child says its pid here first.
        report_read, report_write = os.pipe() if self.sandbox is not None else (-1, -1)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                if report_read >= 0:
                    os.close(report_read)
                self._become_worker(fds[0], report_write)
            except BaseException:
                traceback.print_exc()
                code = EXIT_START_FAILED
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        for fd in fds:
            os.close(fd)
        if report_read >= 0:
            os.close(report_write)
            worker = _read_report(report_read)
            self.intermediates.add(pid)
            if worker is None:
                send(self.control, {"fork_failed": request["fork"], "error": "the session's sandbox failed"})
                return True
            pid = worker
        self.workers[pid] = str(request["fork"])
        send(self.control, {"forked": request["fork"], "pid": pid})
        return True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.intermediates:
                self.intermediates.discard(pid)
                continue
            worker = self.workers.pop(pid, None)
            send(self.control, {"exited": pid, "worker": worker, "code": os.waitstatus_to_exitcode(status)})

    def _become_worker(self, gate: int, report: int) -> None:
        """In the child: shed everything of the fork server's, wait under its limits (and, sandboxed,
        in its sandbox) for its session, become the session's, and serve."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        self.control.close()
        os.setsid()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        reaper = self.sandbox.reaper if self.sandbox is not None else None
        # 1 and 2: the fork server's log, until the session's
        keep = {0, 1, 2, gate, self.lifeline, report, *([reaper] if reaper is not None else [])}
        for fd in open_fds() - keep:
            os.close(fd)
        if self.sandbox is not None:
            listener = self._enter_sandbox(self.sandbox, gate, report)
        else:
            _pass_gate(gate)
            listener = _take_session(gate)
        self.config.fd = listener
        worker_main.run(self.config, self.lifeline, preloaded=True)

    def _enter_sandbox(self, sandbox: Sandbox, gate: int, report: int) -> int:
        """Make the session's namespaces and return in the agent's process, confined, as pid 2 of
        them, with its session and its listening socket. This process forks their pid 1, says its
        pid on `report`, and exits. The pid 1 (the worker the server sees, the fork server's to
        reap) passes the gate, forks the agent, builds the session's view (mounts) for both, then
        confines itself and only reaps (as bubblewrap's does) until the agent's end, which is its
        own exit code, and the end of the namespace. The agent waits for the view, confines itself,
        then waits for its session on the gate (a spare's: a new session costs no fork).

        The agent is forked before the view is built so that the pages building it writes are the
        pid 1's alone, and go back when it becomes the reaper: the agent never holds copies."""
        fork_sandbox.enter_namespaces(sandbox.network)
        init = os.fork()
        if init != 0:
            os.write(report, init.to_bytes(4, "little"))
            os._exit(0)
        os.close(report)
        os.setsid()
        _pass_gate(gate)
        built_read, built_write = os.pipe()
        agent = os.fork()
        if agent == 0:
            os.close(built_write)
            if os.read(built_read, 1) != b"1":
                os._exit(EXIT_START_FAILED)  # its pid 1 could not build the view: it said why
            os.close(built_read)
            if sandbox.reaper is not None:
                os.close(sandbox.reaper)
            fork_sandbox.enter_cgroup_namespace()
            sandbox.confinement.apply()
            listener = _take_session(gate)
            os.environ.update({"HOME": fork_sandbox.HOME, "TMPDIR": fork_sandbox.TMPDIR})
            return listener
        os.close(built_read)
        fork_sandbox.become_pid_one()
        os.write(built_write, b"1")
        os.close(built_write)
        fork_sandbox.not_dumpable()  # the agent, of the same uid, may not open its memory
        for fd in (gate, self.lifeline):
            os.close(fd)
        null = os.open("/dev/null", os.O_WRONLY)  # not the fork server's log: it has nothing to say
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)
        sandbox.confinement.apply()
        if sandbox.reaper is not None:
            # The pages this copy of the fork server wrote since the agent's fork are never the
            # agent's: a few of a tiny program's instead. It reaps as below, and is not dumpable.
            with contextlib.suppress(OSError):
                os.execve(sandbox.reaper, ["agentcore-reaper", str(agent)], {})  # noqa: S606 - our program
        _exit_as(_reap_until(agent))


def _pass_gate(gate: int) -> None:
    """Wait at the gate: the server learns this process's pid from the kernel (SCM_CREDENTIALS, in
    its own pid namespace), puts it under its limits, and only then answers."""
    os.write(gate, b"?")
    if os.read(gate, 1) != b"1":
        os._exit(0)  # the server gave this start up


def _take_session(gate: int) -> int:
    """Wait on the gate for the session; become its (log, environment, working dir, fresh random
    numbers); its listening socket. Exits when the server closes the gate instead (a spare it no
    longer needs)."""
    session = fork_gate.receive_session(gate)
    os.close(gate)
    if session is None:
        os._exit(0)
    os.dup2(session.log, 1)
    os.dup2(session.log, 2)
    os.close(session.log)
    os.environ.clear()
    os.environ.update(session.environment)
    os.chdir(session.cwd)
    random.seed()  # never the same "random" numbers as the sibling sessions
    return session.listener


def _read_report(report: int) -> int | None:
    """The pid a sandboxed child forked (its session's pid 1), or None if it failed first."""
    try:
        data = b""
        while len(data) < 4:
            chunk = os.read(report, 4 - len(data))
            if not chunk:
                return None
            data += chunk
        return int.from_bytes(data, "little")
    finally:
        os.close(report)


def _reap_until(pid: int) -> int:
    """Reap every child until `pid` has ended; its wait status."""
    while True:
        try:
            ended, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0
        if ended == pid:
            return status


def _exit_as(status: int) -> NoReturn:
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)  # killed by N: 128 + N, as bubblewrap says it


if __name__ == "__main__":
    sys.exit(main())
