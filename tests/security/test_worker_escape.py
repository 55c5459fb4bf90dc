"""Escapes from a sandboxed worker, tried by a real agent started through `ProcessBackend` as root.

The agent (`attacker_agent.py`) performs the attack named in its payload and reports what it got;
each test asserts the attack failed. The server runs as root here, as in CI and in most container
deployments: the case where a sandbox that merely hides paths is no sandbox at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from open_agentcore.backends import ProcessBackend, ProcessWorker, WorkerSpec, seccomp
from tests.conftest import wait_until

_T = TypeVar("_T")
ATTACKER = Path(__file__).with_name("attacker_agent.py")
MACHINE = seccomp.machine()
# This machine's numbers for the calls the agent makes raw, written out here rather than taken from
# seccomp.py, so that a wrong number in its table cannot make these tests pass.
NUMBERS = {
    "x86_64": {
        "getpid": 39, "unshare": 272, "open_by_handle_at": 304, "keyctl": 250, "bpf": 321, "reboot": 169,
        "io_uring_setup": 425, "clone3": 435,
    },
    "aarch64": {
        "getpid": 172, "unshare": 97, "open_by_handle_at": 265, "keyctl": 219, "bpf": 280, "reboot": 142,
        "io_uring_setup": 425, "clone3": 435,
    },
}[MACHINE]  # fmt: skip
REFUSED = {"errno": "EPERM"}


class EventLoopThread:
    """One event loop for the module's workers, which outlive any single test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout: float = 60) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Server:
    """What a runtime server has on disk, and a way to start sandboxed workers like it does."""

    loop: EventLoopThread
    backend: ProcessBackend
    data_dir: Path
    code_dir: Path
    workers: list[ProcessWorker]
    session_start: str = "fresh"

    def start(self, name: str, backend: ProcessBackend | None = None) -> ProcessWorker:
        spec = WorkerSpec(
            worker_id=name,
            python=Path(sys.executable),
            code_dir=self.code_dir,
            entrypoint="agent.py",
            work_dir=self.data_dir / "w" / name,
            environment={"AGENTCORE_SESSION_ID": f"session-{name}"},
            hidden_paths=(self.data_dir,),
            start_timeout=30,
        )
        worker = self.loop.run((backend or self.backend).start(spec))
        self.workers.append(worker)
        return worker

    def stop(self, worker: ProcessWorker, backend: ProcessBackend | None = None) -> None:
        self.loop.run((backend or self.backend).stop(worker, grace=5))


def attack(worker: ProcessWorker, name: str, **details: Any) -> Any:
    payload = {"attack": name, "numbers": NUMBERS, **details}
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(worker.socket_path)), timeout=60) as client:
        reply = client.post("http://worker/invocations", json=payload)
    assert reply.status_code == 200, reply.text
    return reply.json()


def host_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` now; a thread or process that ends while they are listed is not
    one of them (the agent's interpreter has threads of its own that come and go)."""
    found = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                children = (task / "children").read_text().split()
            except (FileNotFoundError, ProcessLookupError):
                continue  # the thread ended after the listing
            for child in map(int, children):
                found += [child, *descendants(child)]
    return found


@pytest.fixture(scope="module", params=["fresh", "fork"])
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Server]:
    """Every attack is tried from a fresh worker, and again from a session forked by its version's
    sandboxed fork server (`--session-start fork`)."""
    assert os.geteuid() == 0, "these attacks are about a server run as root"
    session_start: str = request.param
    data_dir = tmp_path_factory.mktemp("data")
    data_dir.chmod(0o700)
    (data_dir / "admin-credentials.json").write_text(
        '{"accessKeyId": "AKIDADMIN", "secretAccessKey": "s3cret"}'
    )
    (data_dir / "state.db").write_bytes(b"SQLite format 3\0 the store")
    code_dir = data_dir / "code" / "runtime-a" / "1"
    code_dir.mkdir(parents=True)
    shutil.copyfile(ATTACKER, code_dir / "agent.py")
    for path in (code_dir / "agent.py", code_dir):  # as artifacts/unpack.py leaves it
        path.chmod(0o444 if path.is_file() else 0o555)
    loop = EventLoopThread()
    workers: list[ProcessWorker] = []
    backend = ProcessBackend(sandbox="bwrap", session_start=session_start)
    try:
        yield Server(loop, backend, data_dir, code_dir, workers, session_start)
    finally:
        for worker in workers:
            loop.run(backend.stop(worker, grace=0))
        backend.close()
        loop.close()


@pytest.fixture(scope="module")
def attacker(server: Server) -> ProcessWorker:
    return server.start("wattacker")


@pytest.fixture(scope="module")
def victim(server: Server) -> ProcessWorker:
    worker = server.start("wvictim")
    (server.data_dir / "w" / "wvictim" / "home" / "diary.txt").write_text("the victim's secret")
    return worker


# Who the worker is --------------------------------------------------------------------------


def test_the_worker_holds_no_capability_no_new_privs_and_a_seccomp_filter(attacker: ProcessWorker) -> None:
    status = attack(attacker, "status")
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == int(status["CapBnd"], 16) == 0
    assert int(status["CapInh"], 16) == int(status["CapAmb"], 16) == 0
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"
    assert status["Uid"].split() == ["1000"] * 4


def test_on_the_host_the_agent_runs_as_its_own_uid_not_root(
    attacker: ProcessWorker, victim: ProcessWorker
) -> None:
    def agent_uids(worker: ProcessWorker) -> set[str]:
        pythons = [pid for pid in descendants(worker.pid) if host_status(pid)["Name"].startswith("python")]
        assert pythons, "the agent's interpreter is a descendant of the worker's process"
        return {uid for pid in pythons for uid in host_status(pid)["Uid"].split()}

    if attacker.started_by == "fork":
        # Sessions of one version share its fork server's host uid (none of root's, nobody's):
        # kept apart by namespaces, without capabilities, and by their cgroups.
        (uid,) = agent_uids(attacker)
        assert agent_uids(victim) == {uid} and int(uid) >= 2_000_000_000
        return
    assert agent_uids(attacker) == {str(attacker.host_uid)}
    assert agent_uids(victim) == {str(victim.host_uid)}
    assert attacker.host_uid != victim.host_uid
    assert attacker.host_uid is not None and attacker.host_uid >= 2_000_000_000


def test_setuid_to_root_fails(attacker: ProcessWorker) -> None:
    tried = attack(attacker, "become_root")
    # EINVAL: uid 0 does not even exist in the worker's user namespace.
    assert tried["setuid"]["errno"] in ("EPERM", "EINVAL") and tried["setgid"]["errno"] in ("EPERM", "EINVAL")
    assert tried["uids"] == tried["gids"] == [1000, 1000, 1000]


# The server's files -------------------------------------------------------------------------


def test_the_admin_credentials_and_the_store_cannot_be_read_by_path(
    server: Server, attacker: ProcessWorker
) -> None:
    paths = [str(server.data_dir / "admin-credentials.json"), str(server.data_dir / "state.db")]
    read = attack(attacker, "read_files", paths=paths)
    for path in paths:
        assert read[path]["error"] == "FileNotFoundError", read[path]


def test_root_home_and_the_data_dir_show_nothing_of_the_host(server: Server, attacker: ProcessWorker) -> None:
    paths = ["/root", "/home", "/var", "/sys", "/etc", str(server.data_dir), str(server.data_dir / "w")]
    listed = attack(attacker, "list_dirs", paths=paths)
    # /root holds only the way to this interpreter when it lives there (pyenv), nothing else of root's.
    visible_under_root = {
        Path(path).relative_to("/root").parts[0] for path in sys.path if path.startswith("/root/")
    }
    assert set(listed["/root"].get("result", [])) <= visible_under_root, listed["/root"]
    forked = attacker.started_by == "fork"
    for missing in ("/var", "/sys", *([] if forked else ["/home"])):
        assert listed[missing]["error"] == "FileNotFoundError", listed[missing]
    if forked:  # a forked session's home is in its own /home, a tmpfs
        assert listed["/home"]["result"] == ["agent"]
    etc = set(listed["/etc"]["result"])
    assert {"passwd", "group", "resolv.conf", "hosts"} <= etc
    assert not etc & {"shadow", "gshadow", "ssh", "sudoers", "subuid", "machine-id", "hostname"}
    assert set(listed[str(server.data_dir)]["result"]) <= {"code", "w"}
    if forked:  # no work dir of its own is shown to it, either
        assert listed[str(server.data_dir / "w")]["error"] == "FileNotFoundError"
    else:
        assert listed[str(server.data_dir / "w")]["result"] == ["wattacker"]


# Mounts -------------------------------------------------------------------------------------


def test_unmounting_and_mounting_fail(server: Server, attacker: ProcessWorker) -> None:
    tried = attack(attacker, "mounts", code_dir=str(server.code_dir))
    assert tried == {
        "umount /usr": REFUSED,
        "umount code": REFUSED,
        "umount /": REFUSED,
        "mount tmpfs": REFUSED,
        "mount proc": REFUSED,
        "bind mount": REFUSED,
    }


def test_the_shared_code_dir_can_be_neither_remounted_nor_written(
    server: Server, attacker: ProcessWorker
) -> None:
    before = (server.code_dir / "agent.py").read_bytes()
    tried = attack(attacker, "change_code", code_dir=str(server.code_dir), entrypoint="agent.py")
    assert tried["remount"] == REFUSED
    for change in ("overwrite", "add", "chmod"):
        assert tried[change]["error"] in ("PermissionError", "OSError"), tried[change]
    assert (server.code_dir / "agent.py").read_bytes() == before
    assert not (server.code_dir / "planted.py").exists()


# Other sessions -----------------------------------------------------------------------------


def test_another_sessions_files_and_socket_are_out_of_reach(
    server: Server, attacker: ProcessWorker, victim: ProcessWorker
) -> None:
    diary = str(server.data_dir / "w" / "wvictim" / "home" / "diary.txt")
    reached = attack(
        attacker,
        "reach_neighbour",
        paths=[diary],
        socket=str(victim.socket_path),
        work_root=str(server.data_dir / "w"),
    )
    assert reached[diary]["error"] == "FileNotFoundError"
    assert reached["socket"]["error"] == "FileNotFoundError"
    if attacker.started_by == "fork":
        assert reached["work_root"]["error"] == "FileNotFoundError"
    else:
        assert reached["work_root"]["result"] == ["wattacker"]


def test_other_pids_are_invisible_and_killing_a_host_pid_does_nothing(
    server: Server, attacker: ProcessWorker, victim: ProcessWorker
) -> None:
    seen = attack(attacker, "processes", pid=victim.pid)
    assert seen["kill host pid"]["error"] == "ProcessLookupError"
    # bubblewrap's init and the inner bubblewrap (a forked session's reaper: its tiny program once
    # the agent is forked, `backends/reaper.py`); the agent and its own children are all else.
    assert sorted(seen["seen"].values()).count(sys.executable) == 1
    reapers = (sys.executable, "?", shutil.which("bwrap"), "agentcore-reaper")
    assert all(program in reapers for program in seen["seen"].values()), seen
    assert victim.alive()


def test_kill_minus_one_ends_only_the_attackers_own_sandbox(server: Server, victim: ProcessWorker) -> None:
    doomed = server.start("wdoomed")
    if doomed.started_by == "fork":
        # Pid 1 of its own namespace, with nothing else in it: kill(-1) finds no process to signal.
        with pytest.raises(AssertionError, match="No such process"):
            attack(doomed, "kill_everyone")
        assert doomed.alive() and victim.alive() and server.backend.fork_servers()
        server.stop(doomed)
        assert attack(victim, "status")["Seccomp"] == "2"
        return
    # The reply may or may not get out before the sandbox goes down around it.
    with contextlib.suppress(httpx.HTTPError):
        attack(doomed, "kill_everyone")
    assert server.loop.run(doomed.wait_exit(), timeout=10) != 0
    assert victim.alive()
    assert attack(victim, "status")["Seccomp"] == "2"


def test_the_agent_cannot_swap_its_log_or_socket_for_a_link_the_server_would_follow(
    server: Server, attacker: ProcessWorker
) -> None:
    work_dir = server.data_dir / "w" / "wattacker"
    tried = attack(
        attacker, "swap_log", work_dir=str(work_dir), target=str(server.data_dir / "admin-credentials.json")
    )
    if attacker.started_by == "fork":  # its home and tmp are its own tmpfs: no work dir is shown
        assert tried["see work dir"]["error"] == tried["link"]["error"] == "FileNotFoundError"
    else:
        # Its home and tmp are bound inside; the directory around them is the sandbox's, not writable.
        assert set(tried["see work dir"]["result"]) <= {"home", "tmp"}
        assert tried["link"]["error"] == "PermissionError"
    assert not (work_dir / "worker.log").is_symlink() and not (work_dir / "worker.sock").is_symlink()
    assert "s3cret" not in attacker.log_path.read_text(errors="replace")


# Processes in its own sandbox ---------------------------------------------------------------


def test_ptrace_and_reading_another_process_memory_are_refused(attacker: ProcessWorker) -> None:
    tried = attack(attacker, "trace")
    assert tried["ptrace attach"] == REFUSED
    assert tried["ptrace seize"] == REFUSED
    assert tried["process_vm_readv"] == REFUSED
    # bubblewrap's own processes in the sandbox (a forked session's reaper, pid 1 of its namespace):
    # their memory would be a way around the filter.
    assert tried["other processes' memory"]
    for outcome in tried["other processes' memory"].values():
        assert outcome["error"] == "PermissionError", tried


# Namespaces ---------------------------------------------------------------------------------


def test_a_new_user_namespace_cannot_be_made_to_mount_in(attacker: ProcessWorker) -> None:
    tried = attack(attacker, "new_user_namespace")
    assert tried["unshare"] == REFUSED
    assert tried["mount after"] == REFUSED
    assert tried["unshare tool exit"] != 0


def test_setns_into_any_namespace_is_refused(attacker: ProcessWorker) -> None:
    entered = attack(attacker, "enter_namespaces")
    assert entered
    for name, outcome in entered.items():
        assert outcome in (REFUSED, {"error": "PermissionError"}), (name, outcome)


# Calls that reach the kernel's most exposed parts --------------------------------------------


def test_open_by_handle_at_cannot_open_the_hosts_filesystem_root(attacker: ProcessWorker) -> None:
    assert attack(attacker, "open_by_handle") == REFUSED


def test_kernel_keyrings_are_refused(attacker: ProcessWorker) -> None:
    assert attack(attacker, "keyring") == REFUSED


def test_bpf_is_refused(attacker: ProcessWorker) -> None:
    assert attack(attacker, "bpf") == REFUSED


def test_loading_a_kernel_module_is_refused(attacker: ProcessWorker) -> None:
    assert attack(attacker, "load_module") == REFUSED


def test_reboot_is_refused(attacker: ProcessWorker) -> None:
    assert attack(attacker, "reboot") == REFUSED


def test_chroot_is_refused(attacker: ProcessWorker) -> None:
    assert attack(attacker, "chroot")["error"] == "PermissionError"


def test_device_nodes_cannot_be_made_but_fifos_can(attacker: ProcessWorker) -> None:
    made = attack(attacker, "device_node")
    assert made["char device"]["error"] == "PermissionError"
    assert made["block device"]["error"] == "PermissionError"
    assert made["fifo"] == {"result": None}


def test_io_uring_is_refused(attacker: ProcessWorker) -> None:
    assert attack(attacker, "io_uring") == REFUSED


def test_a_foreign_abi_is_refused(attacker: ProcessWorker) -> None:
    tried = attack(attacker, "foreign_abi")
    if MACHINE == "x86_64":
        assert tried["x32 getpid"] == REFUSED
        # Through int 0x80 the call is i386's: refused (-EPERM), or the kernel has no IA-32 at all.
        assert tried["i386 getpid"] in ({"returned": -1}, {"crashed": -11})


# Network ------------------------------------------------------------------------------------


def test_raw_sockets_are_refused(attacker: ProcessWorker) -> None:
    tried = attack(attacker, "raw_socket")
    assert tried["icmp"]["error"] == "PermissionError"
    assert tried["packet"]["error"] == "PermissionError"


def test_with_no_network_a_loopback_listener_of_the_host_sees_nothing(server: Server) -> None:
    isolated = ProcessBackend(sandbox="bwrap", network="none", session_start=server.session_start)
    worker = server.start("wisolated", isolated)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        tried = attack(worker, "connect", port=listener.getsockname()[1])
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()
        server.stop(worker, isolated)
    assert tried["connect"]["error"] == "ConnectionRefusedError"
    assert tried["interfaces"] == ["lo"]


# What agents still do -----------------------------------------------------------------------


def test_clone3_answers_enosys_and_threads_subprocesses_and_multiprocessing_still_work(
    attacker: ProcessWorker,
) -> None:
    done = attack(attacker, "everyday_work")
    assert done == {
        "clone3": {"errno": "ENOSYS"},
        "thread": ["thread"],
        "subprocess": "subprocess",
        "posix_spawn": 0,
        "fork": 7,
        "spawn": [2, 4],
        "forkserver": [2, 4],
        "semaphore": True,
        "asyncio": "asyncio",
    }


def test_the_agent_writes_its_home_and_tmp_and_has_tls_and_names(attacker: ProcessWorker) -> None:
    done = attack(attacker, "home_and_tmp")
    assert done["home"] == "mine" and done["tmpdir"] == 1024 and done["tmp"] == "private /tmp"
    assert done["user"] == "agent"
    assert done["ca certificates"] > 0
    assert done["localhost"] == ["127.0.0.1"]


def test_after_stop_nothing_runs_as_the_workers_uid(server: Server) -> None:
    worker = server.start("wshortlived")
    if worker.started_by == "fork":
        # Its uid is its version's (the fork server's and its siblings'): what must be gone is the
        # session's own processes, whatever they started.
        attack(worker, "everyday_work")
        mine = [worker.pid, *descendants(worker.pid)]
        server.stop(worker)
        assert wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in mine), timeout=5)
        return
    uid = str(worker.host_uid)
    server.stop(worker)

    def running_as_uid() -> list[str]:
        found = []
        for name in filter(str.isdigit, os.listdir("/proc")):
            try:
                status = host_status(int(name))
            except OSError:
                continue
            if uid in status["Uid"].split() and not status["State"].startswith("Z"):
                found.append(name)
        return found

    assert running_as_uid() == []
    assert wait_until(lambda: not worker.alive(), timeout=5)
