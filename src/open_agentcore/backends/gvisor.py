"""gVisor sandboxes: the runsc commands that run, signal and delete a worker's sandbox, the probe
that proves runsc works here, and finding sandboxes a previous server left behind.

Each worker runs in a sandbox of its own, started in the foreground by `runsc run` (its exit
status is the worker's; killed by signal N, 128 + N). The agent's system calls are served by
gVisor's sentry, a user-space kernel chrooted to an empty dir under runsc's own seccomp filter
(on the host: nobody in a user namespace of its own, or, with the host's network, root with only
CAP_SYS_PTRACE: see `Gvisor.protections`); files reach it through the gofer.
Always with the ptrace platform (KVM hangs under nested virtualisation), never with runsc's
default `--network=sandbox` (it would configure the host's network); `--ignore-cgroups`, so the
sandbox's processes stay in the cgroups its command was started in (`limits.py`), instead of
runsc making cgroups of its own at the top of every hierarchy; the root under an overlay in the
sandbox's memory (`oci_bundle.py`); and `--host-uds=create`, which lets the worker make the unix
socket the server connects to (`work_dir.adopt_socket`), and nothing more: no host socket can be
opened from inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import oci_bundle, process_tree
from .sandbox import NETWORKS, SandboxUnavailable, SandboxView, interpreter_paths

logger = logging.getLogger("open_agentcore.backends.gvisor")

PLATFORM = "ptrace"
# The sentry's, gofer's and ptrace stubs' host threads (about 80 for an idle worker: the gofer keeps
# a few per mount, the sentry's Go runtime more under load) are in the sandbox's cgroups, so its pids
# limit is the session's plus these. A sandbox that still reaches it ends: the sentry panics when it
# cannot make a thread.
THREADS_HEADROOM = 256
_COMMAND_TIMEOUT = 10.0  # runsc kill, delete, list: each answers in tens of milliseconds
_KILL_WAIT = 5.0  # how long a sandbox sent SIGKILL may take to end before runsc itself is killed
_FILESYSTEM = (
    "read-only system paths, the version's code and environment, its own home (on disk, through "
    "gVisor's gofer) and /tmp (TMPDIR; in its sandbox's memory, counted against its memory limit)"
)
_PROBE_TIMEOUT = 60.0
_PROBE = (
    "import json, os\n"
    "lines = open('/proc/self/status').read().splitlines()\n"
    "status = dict(line.split(':\\t', 1) for line in lines if ':\\t' in line)\n"
    "print(json.dumps({'status': status, 'pid': os.getpid(), 'kernel': os.uname().release}))\n"
)
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class Gvisor:
    """runsc for one server: its binary, the state dir it keeps its sandboxes in, and the network."""

    runsc: str
    state_dir: Path
    network: str = "default"
    version: str = ""

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {', '.join(NETWORKS)}, not {self.network!r}")

    def command(self, *arguments: str) -> list[str]:
        """runsc with this server's global flags, then `arguments` (a subcommand and its own)."""
        network = "none" if self.network == "none" else "host"
        return [
            self.runsc, "--root", str(self.state_dir), f"--platform={PLATFORM}", f"--network={network}",
            "--host-uds=create", "--ignore-cgroups", "--overlay2=root:memory", *arguments,
        ]  # fmt: skip

    def run_command(self, bundle: Path, container_id: str) -> list[str]:
        """`runsc run` of the sandbox `bundle` describes, in the foreground."""
        _check_id(container_id)
        return self.command("run", "--bundle", str(bundle), container_id)

    def protections(self, uid_base: int) -> dict[str, object]:
        """What confines a worker in these sandboxes, for `ProcessBackend.protections()`."""
        if self.network == "none":
            network = "none (gVisor's own network stack, with a loopback only)"
            sentry = "runs as nobody in a user namespace of its own"
        else:
            network = "host (runsc --network=host: the agent's sockets are made in the host's network)"
            # runsc keeps a sandbox that uses the host's network in the host's user namespace.
            sentry = (
                "runs as root in the host's user namespace, with no capability but CAP_SYS_PTRACE (for "
                "its ptrace stubs); --session-network none has it run as nobody in a namespace of its own"
            )
        return {
            "sandbox": "gvisor",
            "runsc": f"{self.version or 'unknown version'}, platform {PLATFORM}",
            "user": (
                f"a uid per session ({uid_base}+) inside the sandbox; on the host, gVisor's sentry, which "
                f"serves the agent's system calls, {sentry}, chrooted to an empty dir"
            ),
            "capabilities": "none",
            "no_new_privs": True,
            "seccomp": (
                "the agent's system calls are served by gVisor's sentry, never by the host kernel; the "
                "sentry and gofer run under runsc's own seccomp filters"
            ),
            "filesystem": _FILESYSTEM,
            "network": network,
            "namespaces": ["mount", "pid", "ipc", "uts", *(["net"] if self.network == "none" else [])],
        }

    def write_bundle(self, bundle: Path, view: SandboxView, process: oci_bundle.Process) -> None:
        """Make the OCI bundle of one sandbox (see `oci_bundle.py`)."""
        oci_bundle.write(bundle, view, process, own_network=self.network == "none")

    def kill(self, container_id: str, signum: int) -> bool:
        """Send `signum` to the sandbox's first process (its pid 1); False if there is no such sandbox
        (any more) or runsc failed."""
        return self._run("kill", container_id, str(int(signum)))

    def delete(self, container_id: str) -> bool:
        """Kill whatever runs in the sandbox and forget it (`delete --force`); True if runsc succeeded,
        which it also does when the sandbox is unknown."""
        return self._run("delete", "--force", container_id)

    def containers(self) -> list[str]:
        """The ids of the sandboxes in the state dir, running or not."""
        try:
            done = subprocess.run(  # noqa: S603 - runsc, fixed arguments
                self.command("list", "-quiet"), capture_output=True, text=True, timeout=_COMMAND_TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired):
            return []
        return done.stdout.split() if done.returncode == 0 else []

    def delete_all(self) -> list[str]:
        """Delete every sandbox in the state dir (a previous server's, after it crashed); their ids."""
        deleted = [container_id for container_id in self.containers() if self.delete(container_id)]
        for container_id in deleted:
            logger.warning("Deleted gVisor sandbox %s left over from a previous server", container_id)
        return deleted

    def probe(self, uid: int, python: str = sys.executable) -> dict[str, object]:
        """Run one trivial sandbox as `uid`; what it reported, or `SandboxUnavailable` saying why.

        It checks what the sandboxed process reports of itself, not only that it started: the
        uid asked for, no capabilities, pid 1 of its own pid namespace.
        """
        container_id = f"probe-{secrets.token_hex(6)}"
        bundle = Path(tempfile.mkdtemp(prefix="open-agentcore-probe-")) / "bundle"
        command = [python, "-I", "-S", "-c", _PROBE]
        try:
            view = SandboxView(read_only=interpreter_paths(python))
            environment = {"PATH": "/usr/bin:/bin"}
            self.write_bundle(bundle, view, oci_bundle.Process(command, environment, uid, Path("/")))
            done = subprocess.run(  # noqa: S603 - runsc, arguments built here
                self.run_command(bundle, container_id),
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=_PROBE_TIMEOUT, cwd="/",
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise SandboxUnavailable(
                f"runsc did not run a trivial sandbox within {_PROBE_TIMEOUT:g}s (platform {PLATFORM})"
            ) from None
        except OSError as error:
            raise SandboxUnavailable(f"runsc not working: {error}") from None
        finally:
            self.delete(container_id)
            shutil.rmtree(bundle.parent, ignore_errors=True)
        if done.returncode != 0:
            output = " ".join((done.stderr or done.stdout).split())[-300:] or "(no output)"
            raise SandboxUnavailable(f"runsc could not run a sandbox (exit {done.returncode}): {output}")
        try:
            report = json.loads(done.stdout)
        except ValueError:
            raise SandboxUnavailable(f"the gVisor probe printed {done.stdout[:200]!r}") from None
        _check_confined(report, uid)
        return dict(report)

    def _run(self, *arguments: str) -> bool:
        try:
            done = subprocess.run(  # noqa: S603 - runsc, arguments built here
                self.command(*arguments), capture_output=True, timeout=_COMMAND_TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0


def find_gvisor(state_dir: Path, network: str = "default") -> Gvisor:
    """runsc on this machine (not yet probed), keeping its state in `state_dir` (made 0700);
    `SandboxUnavailable` naming what is missing."""
    runsc = shutil.which("runsc")
    if runsc is None:
        raise SandboxUnavailable("runsc not found (gVisor: Debian's package runsc)")
    if os.geteuid() != 0:
        raise SandboxUnavailable("runsc needs the server to run as root to make its sandboxes")
    try:
        done = subprocess.run(  # noqa: S603 - runsc, fixed arguments
            [runsc, "--version"], capture_output=True, text=True, timeout=_COMMAND_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SandboxUnavailable(f"runsc not working: {error}") from None
    version = done.stdout.split("\n", 1)[0].removeprefix("runsc version ").strip()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    return Gvisor(runsc, state_dir, network, version)


@dataclass
class Sandbox:
    """One worker's gVisor sandbox: its id in the state dir, its bundle, and its host processes."""

    gvisor: Gvisor
    container_id: str
    bundle: Path
    # pidfds of the sandbox's own processes (sentry and gofer), by pid.
    _processes: dict[int, int] = field(default_factory=dict, repr=False)

    def note_processes(self, runsc_pid: int) -> None:
        """Remember the sandbox's own processes (the children of `runsc run`: sentry and gofer), so
        that `destroy` can make sure they are gone. Call once the sandbox serves; again adds new ones."""
        for child in process_tree.children_of_all_threads(runsc_pid):
            if child in self._processes:
                continue
            try:
                pidfd = os.pidfd_open(child)
            except OSError:
                continue
            if _parent(child) == runsc_pid:  # still the same process: its pid was not reused
                self._processes[child] = pidfd
            else:
                os.close(pidfd)

    def signal(self, signum: int) -> bool:
        """Send `signum` to the agent (the sandbox's pid 1); False when runsc could not."""
        return self.gvisor.kill(self.container_id, signum)

    async def stop(self, run: asyncio.subprocess.Process, grace: float) -> None:
        """Stop this sandbox, whose `runsc run` is `run`: SIGTERM to the agent, SIGKILL after `grace`
        seconds (runsc forwards no signal sent to it itself); `run` is killed if the sandbox has not
        ended a few seconds later, and the sandbox dies with it. `destroy` deletes what is left."""
        if _ended(run):
            return
        await asyncio.to_thread(self.note_processes, run.pid)
        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, _KILL_WAIT)):
            if wait <= 0 or not await asyncio.to_thread(self.signal, signum):
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(run.wait(), wait)
            if _ended(run):
                return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(run.pid, signal.SIGKILL)
        await run.wait()

    def destroy(self, timeout: float = 5.0) -> bool:
        """Delete the sandbox and its bundle, and kill its sentry and gofer if they outlived `runsc
        run`; False if one of them survived `timeout` seconds of SIGKILL. Blocking; idempotent."""
        self.gvisor.delete(self.container_id)
        gone = _kill_and_reap(list(self._processes.values()), timeout)
        for pidfd in self._processes.values():
            os.close(pidfd)
        self._processes.clear()
        oci_bundle.remove(self.bundle)
        return gone


def is_runsc_run(arguments: Sequence[bytes], worker_id: str) -> bool:
    """Whether a command line is `runsc ... run --bundle B <worker_id>`, as `Gvisor.run_command` makes."""
    if len(arguments) < 4 or os.path.basename(arguments[0]) != b"runsc":
        return False
    words = [argument for argument in arguments if argument]
    return b"run" in words and b"--bundle" in words and words[-1] == worker_id.encode()


def delete_orphan(arguments: Sequence[bytes], worker_id: str) -> bool:
    """Delete the sandbox of a `runsc run` command line a previous server started (its `--root`)."""
    words = [argument.decode(errors="replace") for argument in arguments if argument]
    if "--root" not in words[:-1] or not _CONTAINER_ID.fullmatch(worker_id):
        return False
    runsc = shutil.which("runsc") or words[0]
    state_dir = Path(words[words.index("--root") + 1])
    return Gvisor(runsc, state_dir).delete(worker_id)


def _ended(process: asyncio.subprocess.Process) -> bool:
    return process.returncode is not None


def _check_id(container_id: str) -> None:
    if not _CONTAINER_ID.fullmatch(container_id):
        raise ValueError(f"a sandbox id is 1-128 letters, digits, '_', '.' or '-', not {container_id!r}")


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name (field 2) may hold spaces and parentheses: parse after its last ')'.
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _kill_and_reap(pidfds: Sequence[int], timeout: float) -> bool:
    """SIGKILL each process and wait until all have exited; False if one outlived `timeout`."""
    for pidfd in pidfds:
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    for pidfd in pidfds:
        # A pidfd polls readable once its process has exited.
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(deadline - time.monotonic(), 0) * 1000):
            return False
    return True


def _check_confined(report: dict[str, object], uid: int) -> None:
    status = report.get("status")
    if not isinstance(status, dict):
        raise SandboxUnavailable(f"the gVisor probe reported {report!r}")
    problems = []
    if str(status.get("Uid", "")).split() != [str(uid)] * 4:
        problems.append(f"its uid is {status.get('Uid')!r}, not {uid}")
    for name in ("CapEff", "CapPrm", "CapBnd"):
        if int(str(status.get(name, "1")), 16) != 0:
            problems.append(f"it keeps capabilities ({name} {status.get(name)})")
    if report.get("pid") != 1:
        problems.append(f"it is pid {report.get('pid')}, not pid 1 of a pid namespace of its own")
    if problems:
        raise SandboxUnavailable("the gVisor sandbox started, but " + "; ".join(problems))


__all__ = [
    "PLATFORM",
    "THREADS_HEADROOM",
    "Gvisor",
    "Sandbox",
    "delete_orphan",
    "find_gvisor",
    "is_runsc_run",
]
