"""gVisor workers: `backends/gvisor.py`, `backends/oci_bundle.py`, `work_dir.adopt_socket`, and
`ProcessBackend(sandbox="gvisor")` running real sandboxes (runsc, ptrace platform, as root, as CI).

Each real sandbox costs a second or two to start, so the workers that several tests look at are
module-scoped, and each test that ends a worker starts just that one.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from websockets.asyncio.client import unix_connect
from websockets.sync.client import connect

from bedrock_agentcore.runtime import AgentCoreRuntimeClient
from open_agentcore.backends import (
    BackendUnavailable,
    ProcessBackend,
    ProcessWorker,
    SessionLimits,
    WorkerSpec,
    WorkerStartFailed,
    kill_orphan,
    process,
)
from open_agentcore.backends.gvisor import THREADS_HEADROOM, Gvisor
from open_agentcore.backends.oci_bundle import Process, write
from open_agentcore.backends.rlimits import RlimitEnforcer
from open_agentcore.backends.sandbox import SandboxView
from open_agentcore.backends.work_dir import UnsafeSocket, adopt_socket
from tests.conftest import wait_until
from tests.security.test_worker_escape import EventLoopThread
from tests.server.conftest import KEY_ID, SECRET, Server, running_server

RUNSC = "/usr/bin/runsc"
MiB = 1024**2
UID = 2_000_000_042

AGENT = """
import asyncio, contextlib, os, resource, time
from pathlib import Path
from bedrock_agentcore import BedrockAgentCoreApp


@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    if os.environ.get("SLOW_SHUTDOWN"):
        await asyncio.sleep(300)
    Path(os.environ["HOME"], "stopped").write_text("shut down cleanly")


app = BedrockAgentCoreApp(lifespan=lifespan)


@app.entrypoint
def invoke(payload):
    action = payload.get("do")
    if action == "stream":
        return (f"part {n}" for n in range(3))
    if action == "crash":
        os._exit(3)
    if action == "allocate":
        chunks = []
        while True:
            chunks.append(b"\\xff" * (16 << 20))  # written, so the pages are really charged
    if action == "fork":
        for _ in range(payload["forks"]):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
        return {"forked": payload["forks"]}
    if action == "rlimits":
        return {"as": resource.getrlimit(resource.RLIMIT_AS),
                "nproc": resource.getrlimit(resource.RLIMIT_NPROC)}
    Path("/tmp/in-memory").write_text("x")
    names = ("HOME", "TMPDIR", "AGENTCORE_SESSION_ID", "SERVER_SECRET")
    return {"uid": os.getuid(), "pid": os.getpid(), "cwd": os.getcwd(), "tmp": sorted(os.listdir("/tmp")),
            "env": {name: os.environ.get(name) for name in names}}


@app.websocket
async def echo(websocket, context):
    await websocket.accept()
    await websocket.send_text("echo " + await websocket.receive_text())
    await websocket.close()
"""


# Host processes of a sandbox ----------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]  # a zombie has ended


def sandbox_processes(pid: int) -> dict[int, str]:
    """Every host process under `pid` (runsc run: gofer, sentry, ptrace stubs), with its start time."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in map(int, (task / "children").read_text().split()):
            if (started := _start_time(child)) is not None:
                found[child] = started
                found.update(sandbox_processes(child))
    return found


def still_running(processes: dict[int, str]) -> list[int]:
    """Those of `processes` that are still the same process and have not ended."""
    return [pid for pid, started in processes.items() if _start_time(pid) == started]


def sandboxes(state_dir: Path) -> list[str]:
    return Gvisor(RUNSC, state_dir).containers()


# The bundle ---------------------------------------------------------------------------------


def make_bundle(tmp_path: Path, *, own_network: bool = True, rlimits: dict[str, int] | None = None) -> Path:
    code, home, sock = (tmp_path / "data" / "w" / "a" / name for name in ("code", "home", "sock"))
    view = SandboxView(read_only=[Path("/opt/venv"), code], writable=[home, sock], chdir=code, home=home)
    bundle = tmp_path / "bundle"
    command = ["/opt/venv/bin/python", "worker_main.py"]
    write(
        bundle, view, Process(command, {"HOME": str(home)}, UID, code, rlimits or {}), own_network=own_network
    )
    return bundle


def test_the_bundle_root_holds_only_mount_points_links_and_a_few_etc_files(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    root = bundle / "rootfs"
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o700
    assert stat.S_IMODE((bundle / "config.json").stat().st_mode) == 0o600
    assert {path.name for path in root.iterdir()} == {
        "bin", "dev", "etc", "lib", "lib64", "opt", "proc", "sbin", "sys", "tmp", "usr", tmp_path.parts[1]
    }  # fmt: skip
    etc = {path.name for path in (root / "etc").iterdir()}
    assert {"passwd", "group", "ld.so.cache", "resolv.conf", "hosts"} <= etc
    assert not etc & {"shadow", "gshadow", "ssh", "sudoers", "subuid", "machine-id", "hostname"}
    assert f"agent:x:{UID}:{UID}:agent:{tmp_path}/data/w/a/home:" in (root / "etc" / "passwd").read_text()
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    for directory in [root, *(path for path in root.rglob("*") if path.is_dir() and not path.is_symlink())]:
        if directory != root / "tmp":
            assert directory.stat().st_uid == 0 and stat.S_IMODE(directory.stat().st_mode) == 0o755, directory


def test_the_bundle_shows_the_view_and_no_more_and_its_process_holds_nothing(tmp_path: Path) -> None:
    config = json.loads((make_bundle(tmp_path, rlimits={"RLIMIT_AS": 256 * MiB}) / "config.json").read_text())
    binds = {mount["destination"]: mount for mount in config["mounts"] if mount["type"] == "bind"}
    work = tmp_path / "data" / "w" / "a"
    shown = {name: mount for name, mount in binds.items() if not name.startswith("/etc")}
    read_only = {name: "ro" in mount["options"] for name, mount in shown.items()}
    assert read_only == {
        "/usr": True, "/opt/venv": True, str(work / "code"): True, str(work / "home"): False,
        str(work / "sock"): False,
    }  # fmt: skip
    assert all(mount["source"] == name for name, mount in binds.items() if not name.startswith("/etc/"))
    assert {"nosuid", "nodev"} <= set(binds[str(work / "home")]["options"])
    assert config["root"] == {"path": "rootfs", "readonly": False}  # writable only through runsc's overlay
    process = config["process"]
    assert process["user"] == {"uid": UID, "gid": UID, "additionalGids": []}
    assert process["capabilities"] == {
        name: [] for name in ("bounding", "effective", "inheritable", "permitted", "ambient")
    }
    assert process["noNewPrivileges"] is True
    assert process["cwd"] == str(work / "code") and process["env"] == [f"HOME={work / 'home'}"]
    limits = {limit["type"]: (limit["soft"], limit["hard"]) for limit in process["rlimits"]}
    assert limits["RLIMIT_AS"] == (256 * MiB, 256 * MiB) and "RLIMIT_NOFILE" in limits
    assert [namespace["type"] for namespace in config["linux"]["namespaces"]] == [
        "pid", "ipc", "uts", "mount", "network"
    ]  # fmt: skip
    assert "resources" not in config["linux"] and "cgroupsPath" not in config["linux"]


def test_with_the_hosts_network_the_bundle_has_no_network_namespace(tmp_path: Path) -> None:
    config = json.loads((make_bundle(tmp_path, own_network=False) / "config.json").read_text())
    assert "network" not in [namespace["type"] for namespace in config["linux"]["namespaces"]]


@pytest.mark.parametrize(("network", "flag"), [("none", "--network=none"), ("default", "--network=host")])
def test_runsc_runs_on_ptrace_in_its_callers_cgroups_and_never_configures_the_network(
    network: str, flag: str
) -> None:
    argv = Gvisor(RUNSC, Path("/srv/state"), network).run_command(Path("/srv/b"), "w1")
    assert argv[:3] == [RUNSC, "--root", "/srv/state"]
    assert argv[-4:] == ["run", "--bundle", "/srv/b", "w1"]
    assert {
        flag,
        "--platform=ptrace",
        "--ignore-cgroups",
        "--host-uds=create",
        "--overlay2=root:memory",
    } <= set(argv)
    assert [argument for argument in argv if argument.startswith("--network")] == [flag]
    with pytest.raises(ValueError, match="sandbox id"):
        Gvisor(RUNSC, Path("/srv/state")).run_command(Path("/srv/b"), "../w1")


# The socket a worker makes --------------------------------------------------------------------


def listening(path: Path, owner: int | None = None) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    listener.settimeout(10)
    if owner is not None:
        os.chown(path, owner, owner)
    return listener


def test_the_workers_socket_is_linked_and_the_link_outlives_a_swap(tmp_path: Path) -> None:
    made, link, decoy = tmp_path / "sock" / "worker.sock", tmp_path / "worker.sock", tmp_path / "decoy.sock"
    made.parent.mkdir()
    with listening(made, owner=UID) as worker, listening(decoy) as elsewhere:
        assert adopt_socket(made, link, UID)
        made.unlink()
        made.symlink_to(decoy)  # what the agent does next changes nothing for the server
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(link))
            accepted, _ = worker.accept()
            accepted.close()
        elsewhere.setblocking(False)
        with pytest.raises(BlockingIOError):
            elsewhere.accept()
    assert link.is_socket() and not link.is_symlink()


def test_a_link_a_file_or_anothers_socket_is_refused_and_nothing_there_yet_is_waited_for(
    tmp_path: Path,
) -> None:
    made, link, decoy = tmp_path / "worker.sock", tmp_path / "server" / "worker.sock", tmp_path / "decoy.sock"
    link.parent.mkdir()
    assert adopt_socket(made, link, UID) is False
    with listening(decoy, owner=UID) as elsewhere:
        made.symlink_to(decoy)
        with pytest.raises(UnsafeSocket, match="is not a socket"):
            adopt_socket(made, link, UID)
        made.unlink()
        made.write_text("not a socket")
        with pytest.raises(UnsafeSocket, match="is not a socket"):
            adopt_socket(made, link, UID)
        made.unlink()
        with listening(made) as rooted:  # root's, not the worker's
            with pytest.raises(UnsafeSocket, match="belongs to uid 0"):
                adopt_socket(made, link, UID)
            rooted.close()
        elsewhere.setblocking(False)
        with pytest.raises(BlockingIOError):
            elsewhere.accept()
    assert not os.path.lexists(link)


def serve_pings(listener: socket.socket) -> None:
    """Answer every connection to `listener` with 200, as an agent's /ping does, until it is closed."""
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")


def wait_ready(made: Path, timeout: float) -> ProcessWorker:
    """`ProcessBackend._wait_ready` for a stand-in gVisor worker whose socket is made at `made`."""

    async def run() -> ProcessWorker:
        process = await asyncio.create_subprocess_exec("sleep", "60")
        worker = ProcessWorker(
            worker_id="wgofer", process=process, socket_path=made.parent.parent / "worker.sock",
            log_path=made.parent.parent / "worker.log", sandboxed=True, host_uid=UID,
            gvisor=cast(Any, "a stand-in: only its presence matters here"),
        )  # fmt: skip
        try:
            await ProcessBackend(sandbox="none")._wait_ready(worker, timeout, made)
        finally:
            process.kill()
            await process.wait()
        return worker

    return asyncio.run(run())


def test_a_socket_bound_as_root_is_waited_for_until_it_is_the_workers(tmp_path: Path) -> None:
    # runsc's gofer binds the worker's socket as root and gives it to the worker's uid just after:
    # seen in between, it is not refused (that failed a CI run) but not taken either.
    made = tmp_path / "sock" / "worker.sock"
    made.parent.mkdir()
    (tmp_path / "worker.log").write_text("")
    with listening(made) as listener:
        threading.Thread(target=serve_pings, args=(listener,), daemon=True).start()
        chowned = threading.Timer(0.3, os.chown, (made, UID, UID))
        chowned.start()
        worker = wait_ready(made, timeout=20)
        assert os.stat(worker.socket_path).st_uid == UID  # the link is to the socket once it was the worker's
        listener.shutdown(socket.SHUT_RDWR)


def test_a_socket_that_stays_roots_fails_the_start_with_the_reason(tmp_path: Path) -> None:
    made = tmp_path / "sock" / "worker.sock"
    made.parent.mkdir()
    (tmp_path / "worker.log").write_text("")
    with listening(made) as listener:
        threading.Thread(target=serve_pings, args=(listener,), daemon=True).start()
        with pytest.raises(
            WorkerStartFailed, match=r"its socket was refused: .* belongs to uid 0, not to the worker's"
        ):
            wait_ready(made, timeout=0.5)
        assert not os.path.lexists(tmp_path / "worker.sock")
        listener.shutdown(socket.SHUT_RDWR)


# Refusing to run weaker ----------------------------------------------------------------------


def fake_runsc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: str) -> None:
    """A `runsc` on PATH whose `run` does `run` (shell); the rest answers like the real one."""
    tools = tmp_path / "tools"
    tools.mkdir()
    script = textwrap.dedent(
        f"""\
        #!/bin/sh
        case "$*" in
            --version) echo "runsc version fake"; exit 0 ;;
            *" run "*) {run} ;;
            *) exit 0 ;;
        esac
        """
    )
    (tools / "runsc").write_text(script)
    (tools / "runsc").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:/usr/bin:/bin")


def test_without_runsc_gvisor_is_refused_and_auto_never_picks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BackendUnavailable, match=r"--sandbox gvisor was asked for, but runsc not found"):
        ProcessBackend(sandbox="gvisor")
    monkeypatch.undo()
    assert ProcessBackend(sandbox="auto").sandbox_mode() == "bwrap"


def test_a_runsc_that_cannot_run_a_sandbox_is_refused_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_runsc(
        tmp_path, monkeypatch, "echo 'cannot create sandbox: ptrace: operation not permitted' >&2; exit 128"
    )
    with pytest.raises(BackendUnavailable) as refused:
        ProcessBackend(sandbox="gvisor", state_dir=tmp_path / "state")
    assert "runsc could not run a sandbox (exit 128)" in str(refused.value)
    assert "ptrace: operation not permitted" in str(refused.value)


def test_a_sandbox_whose_process_is_root_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = {"status": {"Uid": "0\t0\t0\t0", "CapEff": "0", "CapPrm": "0", "CapBnd": "0"}, "pid": 1}
    fake_runsc(tmp_path, monkeypatch, f"printf '%s\\n' '{json.dumps(report)}'; exit 0")
    with pytest.raises(BackendUnavailable, match="the gVisor sandbox started, but its uid is"):
        ProcessBackend(sandbox="gvisor", state_dir=tmp_path / "state")


# Real workers -------------------------------------------------------------------------------


class Harness:
    """A gVisor backend as a server has it, its code dir, and the workers started through it."""

    def __init__(self, root: Path, backend: ProcessBackend, state_dir: Path) -> None:
        self.root = root
        self.backend = backend
        self.state_dir = state_dir
        self.loop = EventLoopThread()
        self.code = root / "code"
        self.code.mkdir()
        (self.code / "agent.py").write_text(textwrap.dedent(AGENT))
        for path in (self.code / "agent.py", self.code):
            path.chmod(0o444 if path.is_file() else 0o555)
        self.workers: list[tuple[ProcessBackend, ProcessWorker]] = []

    def spec(self, worker_id: str, **environment: str) -> WorkerSpec:
        return WorkerSpec(
            worker_id=worker_id,
            python=Path(sys.executable),
            code_dir=self.code,
            entrypoint="agent.py",
            work_dir=self.root / "w" / worker_id,
            environment={"AGENTCORE_SESSION_ID": f"session-of-{worker_id}", **environment},
            hidden_paths=(self.root / "w",),
            start_timeout=45,
        )

    def start(
        self, worker_id: str, backend: ProcessBackend | None = None, **environment: str
    ) -> ProcessWorker:
        backend = backend or self.backend
        worker = self.loop.run(backend.start(self.spec(worker_id, **environment)))
        self.workers.append((backend, worker))
        return worker

    def invoke(self, worker: ProcessWorker, payload: dict[str, Any]) -> httpx.Response:
        transport = httpx.HTTPTransport(uds=str(worker.socket_path))
        with httpx.Client(transport=transport, base_url="http://worker", timeout=60) as client:
            return client.post("/invocations", json=payload)

    def stop(self, worker: ProcessWorker, grace: float = 0) -> None:
        for backend, started in list(self.workers):
            if started is worker:
                self.loop.run(backend.stop(worker, grace=grace))
                self.workers.remove((backend, started))

    def backend_of_its_own(self, name: str, **options: Any) -> ProcessBackend:
        """Another backend, with a state dir of its own (one on ours would delete our sandboxes)."""
        return ProcessBackend(sandbox="gvisor", state_dir=self.root / f"runsc-{name}", **options)

    def close(self) -> None:
        for backend, worker in self.workers:
            self.loop.run(backend.stop(worker, grace=0))
        self.backend.close()
        self.loop.close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    assert os.geteuid() == 0, "runsc makes its sandboxes as root"
    root = tmp_path_factory.mktemp("gvisor")
    state_dir = root / "runsc"
    made = Harness(root, ProcessBackend(sandbox="gvisor", state_dir=state_dir), state_dir)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def serving(harness: Harness) -> ProcessWorker:
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("SERVER_SECRET", "must-not-leak")
        return harness.start("wserving")


def test_a_worker_serves_from_its_sandbox_as_its_own_uid(harness: Harness, serving: ProcessWorker) -> None:
    reply = harness.invoke(serving, {}).json()
    # The sandbox's own /tmp: what it wrote, and the way down to the mounts that live under the host's
    # /tmp (its work dir; the interpreter too, when the checkout is there).
    bound = (harness.root, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve())
    under_tmp = {path.parts[2] for path in bound if path.parts[1] == "tmp"}
    assert set(reply.pop("tmp")) == {"in-memory"} | under_tmp
    assert reply == {
        "uid": serving.host_uid, "pid": 1, "cwd": str(harness.code),
        "env": {"HOME": str(harness.root / "w" / "wserving" / "home"), "TMPDIR": "/tmp",
                "AGENTCORE_SESSION_ID": "session-of-wserving", "SERVER_SECRET": None},
    }  # fmt: skip
    assert serving.sandboxed and serving.host_uid is not None and serving.host_uid >= 2_000_000_000
    # What it wrote to /tmp is in its sandbox's memory, not in the bundle's root on the host.
    assert not (harness.root / "w" / "wserving" / "bundle" / "rootfs" / "tmp" / "in-memory").exists()


def test_a_worker_streams_server_sent_events(harness: Harness, serving: ProcessWorker) -> None:
    reply = harness.invoke(serving, {"do": "stream"})
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert [line for line in reply.text.splitlines() if line] == [f'data: "part {n}"' for n in range(3)]


def test_a_worker_answers_a_websocket_on_its_socket(harness: Harness, serving: ProcessWorker) -> None:
    async def talk() -> str:
        async with unix_connect(str(serving.socket_path), uri="ws://worker/ws", open_timeout=30) as websocket:
            await websocket.send("hello")
            return str(await websocket.recv())

    assert harness.loop.run(talk()) == "echo hello"


def test_the_server_connects_through_its_own_link_to_the_socket_the_worker_made(
    serving: ProcessWorker,
) -> None:
    made = serving.socket_path.parent / "sock" / "worker.sock"
    assert serving.socket_path.is_socket() and not serving.socket_path.is_symlink()
    assert os.stat(made).st_ino == os.stat(serving.socket_path).st_ino
    assert stat.S_IMODE(serving.socket_path.parent.stat().st_mode) == 0o700
    assert serving.socket_path.parent.stat().st_uid == 0


def host_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def sentry_of(worker: ProcessWorker) -> int:
    """The host pid of the worker's sentry, the process that runs the agent's code."""
    (sentry,) = (
        pid for pid in sandbox_processes(worker.pid)
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"runsc-sandbox\0")
    )  # fmt: skip
    return sentry


def test_with_the_hosts_network_the_sentry_is_root_with_only_ptrace_chrooted_and_filtered(
    serving: ProcessWorker,
) -> None:
    # runsc's --network=host keeps the sentry in the host's user namespace (see docs/security.md);
    # --session-network none gets it nobody in a namespace of its own (tests/security).
    status = host_status(sentry_of(serving))
    assert status["Uid"].split() == ["0"] * 4
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 1 << 19  # CAP_SYS_PTRACE, for its stubs
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    assert sorted(os.listdir(f"/proc/{sentry_of(serving)}/root")) == ["etc", "proc"]


def test_graceful_stop_runs_the_agents_shutdown_and_leaves_no_process(harness: Harness) -> None:
    worker = harness.start("wgraceful")
    processes = sandbox_processes(worker.pid)
    assert len(processes) >= 3  # gofer, sentry, and the stub that runs the agent
    harness.stop(worker, grace=20)
    assert worker.process.returncode == 0
    assert (harness.root / "w" / "wgraceful" / "home" / "stopped").read_text() == "shut down cleanly"
    assert still_running(processes) == []
    assert "wgraceful" not in sandboxes(harness.state_dir)
    assert not (harness.root / "w" / "wgraceful" / "bundle").exists()
    assert not worker.socket_path.exists()


def test_a_stop_past_its_grace_kills_the_whole_sandbox(harness: Harness) -> None:
    worker = harness.start("wstubborn", SLOW_SHUTDOWN="1")
    processes = sandbox_processes(worker.pid)
    harness.stop(worker, grace=0.5)
    assert worker.process.returncode == 137  # runsc's way of saying SIGKILL
    assert not (harness.root / "w" / "wstubborn" / "home" / "stopped").exists()
    assert still_running(processes) == []
    assert "wstubborn" not in sandboxes(harness.state_dir)


def test_a_crashed_worker_ends_with_its_exit_code_and_leaves_nothing(harness: Harness) -> None:
    worker = harness.start("wcrash")
    processes = sandbox_processes(worker.pid)
    with pytest.raises(httpx.HTTPError):
        harness.invoke(worker, {"do": "crash"})
    code = harness.loop.run(worker.wait_exit())
    assert code == 3 and harness.backend.exit_reason(worker, code) == "worker exited with code 3"
    assert still_running(processes) == []
    assert "wcrash" not in sandboxes(harness.state_dir)


@pytest.fixture(scope="module")
def limited(harness: Harness) -> Iterator[ProcessBackend]:
    """A gVisor backend with small per-session limits, as `--session-memory 384M --session-pids 256`."""
    backend = harness.backend_of_its_own(
        "limited", limits=SessionLimits(memory_bytes=384 * MiB, cpus=1, pids=256)
    )
    try:
        yield backend
    finally:
        for started_by, worker in list(harness.workers):
            if started_by is backend:
                harness.stop(worker)
        backend.close()


def test_the_sandbox_runs_in_the_workers_cgroups_with_room_for_its_own_threads(
    harness: Harness, limited: ProcessBackend
) -> None:
    limits = limited.protections()["limits"]
    assert isinstance(limits, dict) and limits["pids"].startswith(f"{256 + THREADS_HEADROOM} (cgroup")
    worker = harness.start("wcontained", limited)
    # The sentry and gofer run in the worker's cgroups: runsc made none of its own.
    for pid in sandbox_processes(worker.pid):
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        limited_by = {line.split(":")[1]: line.split(":")[2] for line in lines}
        assert all(limited_by[name].endswith("/wcontained") for name in ("memory", "pids", "cpu")), lines
    assert worker.limits is not None and worker.limits.usage()["pids"] < THREADS_HEADROOM
    harness.stop(worker)


def test_running_out_of_memory_ends_the_session_with_that_reason(
    harness: Harness, limited: ProcessBackend
) -> None:
    worker = harness.start("wgreedy", limited)
    processes = sandbox_processes(worker.pid)
    with pytest.raises(httpx.HTTPError):
        harness.invoke(worker, {"do": "allocate"})
    code = harness.loop.run(worker.wait_exit())
    assert worker.out_of_memory, code
    assert limited.exit_reason(worker, code) == (
        "the session ran out of memory (limit 384 MiB, --session-memory) and was killed"
    )
    assert still_running(processes) == []


def test_a_fork_bomb_ends_its_own_sandbox_with_that_reason(harness: Harness, serving: ProcessWorker) -> None:
    # Memory enough for the forks to reach the pids limit first.
    forking = harness.backend_of_its_own(
        "forking", limits=SessionLimits(memory_bytes=1024 * MiB, cpus=1, pids=64)
    )
    try:
        worker = harness.start("wforks", forking)
        processes = sandbox_processes(worker.pid)
        with pytest.raises(httpx.HTTPError):
            harness.invoke(worker, {"do": "fork", "forks": 2000})
        code = harness.loop.run(worker.wait_exit())
        assert not worker.out_of_memory
        assert forking.exit_reason(worker, code) == (
            "the session reached its limit of 64 processes and threads (--session-pids) and its gVisor "
            "sandbox ended"
        )
        assert still_running(processes) == []
        assert harness.invoke(serving, {}).status_code == 200  # another session goes on
        harness.stop(worker)
    finally:
        forking.close()


def test_with_rlimits_gvisor_enforces_them_inside_and_runsc_itself_runs_unlimited(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        process, "detect_limits", lambda limits: RlimitEnforcer(limits, "no cgroup, for this test")
    )
    limited = harness.backend_of_its_own(
        "rlimit", limits=SessionLimits(memory_bytes=2048 * MiB, cpus=1, pids=300)
    )
    try:
        worker = harness.start("wrlimited", limited)
        assert Path(f"/proc/{worker.pid}/cmdline").read_bytes().split(b"\0")[0] == RUNSC.encode()
        assert harness.invoke(worker, {"do": "rlimits"}).json() == {
            "as": [2048 * MiB] * 2,
            "nproc": [300] * 2,
        }
        harness.stop(worker)
    finally:
        limited.close()


def test_a_new_server_on_the_same_state_dir_deletes_the_sandboxes_a_crashed_one_left(
    harness: Harness,
) -> None:
    crashed = harness.backend_of_its_own("crashed")
    worker = harness.start("worphan", crashed)
    processes = sandbox_processes(worker.pid)
    successor = harness.backend_of_its_own("crashed")  # the same state dir
    try:
        assert harness.loop.run(worker.wait_exit()) != 0
        assert "worphan" not in sandboxes(harness.root / "runsc-crashed")
        wait_until(lambda: still_running(processes) == [], timeout=10)
        harness.stop(worker)
    finally:
        successor.close()
        crashed.close()


def test_kill_orphan_deletes_a_runsc_worker_by_its_command_line_and_no_other(harness: Harness) -> None:
    worker = harness.start("wleftover")
    processes = sandbox_processes(worker.pid)
    assert kill_orphan(worker.pid, "wsomeoneelse") is False
    assert worker.alive()
    assert kill_orphan(worker.pid, "wleftover") is True
    assert harness.loop.run(worker.wait_exit()) != 0
    assert "wleftover" not in sandboxes(harness.state_dir)
    wait_until(lambda: still_running(processes) == [], timeout=10)


def test_protections_say_what_confines_a_gvisor_worker(harness: Harness) -> None:
    protections = harness.backend.protections()
    assert protections["sandbox"] == "gvisor" and harness.backend.sandbox_mode() == "gvisor"
    assert str(protections["runsc"]).endswith("platform ptrace")
    assert protections["capabilities"] == "none" and protections["no_new_privs"] is True
    assert str(protections["network"]).startswith("host (runsc --network=host")
    assert "runs as root in the host's user namespace" in str(protections["user"])
    assert protections["namespaces"] == ["mount", "pid", "ipc", "uts"]
    assert "limits" not in protections  # this backend has none


def test_the_bundle_and_the_state_are_the_servers_alone(harness: Harness, serving: ProcessWorker) -> None:
    assert stat.S_IMODE(harness.state_dir.stat().st_mode) == 0o700
    listed = subprocess.run([RUNSC, "--root", str(harness.state_dir), "list"], capture_output=True, text=True)
    assert "wserving" in listed.stdout
    config = harness.root / "w" / "wserving" / "bundle" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # it holds the runtime's environment variables


# Through a runtime server -------------------------------------------------------------------


@pytest.fixture
def gvisor_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A runtime server run with `--sandbox gvisor`; its data dir is short (worker sockets live under it)."""
    data_dir = Path(tempfile.mkdtemp(prefix="oacg-", dir="/tmp"))
    # AWS itself cannot exist here: the admin key of the local server stands in for IAM credentials.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    try:
        with running_server(data_dir, sandbox="gvisor") as server:
            yield server
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_runtime_server_with_gvisor_serves_an_agent_to_boto3_streams_and_websockets(
    gvisor_server: Server,
) -> None:
    server = gvisor_server
    health = server.signed("GET", "/_agentcore/health").json()
    assert health["sandbox"] == "gvisor" and health["protections"]["sandbox"] == "gvisor"
    arn = server.deploy({"agent.py": textwrap.dedent(AGENT)}, "gvisored")["agentRuntimeArn"]
    session = "g" * 40
    reply = server.data.invoke_agent_runtime(agentRuntimeArn=arn, payload=b"{}", runtimeSessionId=session)
    answer = json.loads(reply["response"].read())
    assert answer["pid"] == 1 and answer["uid"] >= 2_000_000_000  # pid 1 of its own sandbox, as its own uid
    assert answer["env"]["AGENTCORE_SESSION_ID"] == session and answer["env"]["TMPDIR"] == "/tmp"
    streamed = server.data.invoke_agent_runtime(
        agentRuntimeArn=arn, payload=json.dumps({"do": "stream"}).encode(), runtimeSessionId=session
    )
    assert streamed["contentType"].startswith("text/event-stream")
    frames = [line for line in streamed["response"].read().decode().splitlines() if line.startswith("data:")]
    assert frames == [f'data: "part {n}"' for n in range(3)]
    client = AgentCoreRuntimeClient(region="us-east-1", endpoint_url=server.url)
    url, headers = client.generate_ws_connection(arn, session_id=session)
    upgrade = {"upgrade", "connection", "sec-websocket-version", "sec-websocket-key", "host", "user-agent"}
    kept = {name: value for name, value in headers.items() if name.lower() not in upgrade}
    with connect(url, additional_headers=kept, open_timeout=60) as websocket:
        websocket.send("through the server")
        assert websocket.recv(timeout=30) == "echo through the server"
    server.data.stop_runtime_session(agentRuntimeArn=arn, runtimeSessionId=session)
    runtime_id = arn.rsplit("/", 1)[1]
    listed = server.signed("GET", f"/_agentcore/runtimes/{runtime_id}/sessions").json()["sessions"]
    assert listed == []
    # Nothing of its sandbox is left: no runsc, gofer or sentry names a bundle under the data dir.
    work_root = str(server.data_dir / "w").encode()

    def sandboxes_left() -> list[int]:
        pids = map(int, filter(str.isdigit, os.listdir("/proc")))
        return [pid for pid in pids if work_root in _cmdline(pid)]

    assert wait_until(lambda: sandboxes_left() == [], timeout=10)
    assert not list(server.data_dir.glob("w/*/bundle"))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
