"""Escapes from a gVisor worker, tried by a real agent started through `ProcessBackend(sandbox="gvisor")`
as root: a representative set of `test_worker_escape.py`'s attacks, and the ones only a gVisor
worker can try, because it makes its own socket.

The agent is `attacker_agent.py` with a few more attacks (`AGENT` below); each test asserts the
attack failed. Under gVisor the agent's system calls never reach the host kernel: where an attack
is refused by gVisor's sentry rather than by a filter, the error differs from bubblewrap's, and
what matters is the same: nothing of the host, the server or another session is reached.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from open_agentcore.backends import ProcessBackend, ProcessWorker, WorkerSpec, WorkerStartFailed
from tests.security.test_worker_escape import ATTACKER, REFUSED, EventLoopThread, attack, host_status

AGENT = """
import os, socket
from pathlib import Path
from attacker_agent import app, attack, python_call  # the attacks of the bubblewrap suite, and these


def made_socket():
    return Path(os.environ["HOME"]).parent / "sock" / "worker.sock"


def swap_socket_for_a_link(target):
    made = made_socket()
    beside = made.with_name("worker.sock.new")
    return {
        "link beside": python_call(os.symlink, target, beside),
        "replace": python_call(os.replace, beside, made),
        "unlink": python_call(made.unlink),
        "link in place": python_call(os.symlink, target, made),
    }


if os.environ.get("SWAP_SOCKET_AT_IMPORT"):
    swap_socket_for_a_link(os.environ["SWAP_SOCKET_AT_IMPORT"])


@attack
def swap_socket(payload):
    return swap_socket_for_a_link(payload["target"])


@attack
def connect_unix(payload):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        return python_call(client.connect, payload["path"])
    finally:
        client.close()
"""


class Host:
    """What a runtime server has on disk, a gVisor backend, and the workers it started."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.loop = EventLoopThread()
        self.backend = ProcessBackend(sandbox="gvisor", state_dir=data_dir / "gvisor")
        self.code_dir = data_dir / "code" / "runtime-a" / "1"
        self.code_dir.mkdir(parents=True)
        shutil.copyfile(ATTACKER, self.code_dir / "attacker_agent.py")
        (self.code_dir / "agent.py").write_text(AGENT)
        for path in [*self.code_dir.iterdir(), self.code_dir]:  # as artifacts/unpack.py leaves it
            path.chmod(0o444 if path.is_file() else 0o555)
        self.workers: list[tuple[ProcessBackend, ProcessWorker]] = []

    def start(self, name: str, backend: ProcessBackend | None = None, **environment: str) -> ProcessWorker:
        backend = backend or self.backend
        spec = WorkerSpec(
            worker_id=name,
            python=Path(sys.executable),
            code_dir=self.code_dir,
            entrypoint="agent.py",
            work_dir=self.data_dir / "w" / name,
            environment={"AGENTCORE_SESSION_ID": f"session-{name}", **environment},
            hidden_paths=(self.data_dir,),
            start_timeout=45,
        )
        worker = self.loop.run(backend.start(spec))
        self.workers.append((backend, worker))
        return worker

    def close(self) -> None:
        for backend, worker in self.workers:
            self.loop.run(backend.stop(worker, grace=0))
        self.backend.close()
        self.loop.close()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    assert os.geteuid() == 0, "these attacks are about a server run as root"
    data_dir = tmp_path_factory.mktemp("data")
    data_dir.chmod(0o700)
    (data_dir / "admin-credentials.json").write_text(
        '{"accessKeyId": "AKIDADMIN", "secretAccessKey": "s3cret"}'
    )
    (data_dir / "state.db").write_bytes(b"SQLite format 3\0 the store")
    made = Host(data_dir)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def attacker(host: Host) -> ProcessWorker:
    return host.start("wattacker")


@pytest.fixture(scope="module")
def victim(host: Host) -> ProcessWorker:
    worker = host.start("wvictim")
    (host.data_dir / "w" / "wvictim" / "home" / "diary.txt").write_text("the victim's secret")
    return worker


@pytest.fixture
def bait(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, socket.socket]]:
    """A socket of the host's, listening where the server would never connect by itself."""
    path = tmp_path_factory.mktemp("bait") / "host.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    listener.setblocking(False)
    try:
        yield path, listener
    finally:
        listener.close()


def never_connected(listener: socket.socket) -> bool:
    try:
        listener.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def sandbox_pids(worker: ProcessWorker) -> list[int]:
    found, queue = [], [worker.pid]
    while queue:
        pid = queue.pop()
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = [int(child) for child in (task / "children").read_text().split()]
            found += children
            queue += children
    return found


# Who the agent is ---------------------------------------------------------------------------


def test_the_agent_holds_no_capability_and_runs_as_a_uid_of_its_own(
    attacker: ProcessWorker, victim: ProcessWorker
) -> None:
    status = attack(attacker, "status")
    for name in ("CapEff", "CapPrm", "CapBnd", "CapInh"):
        assert int(status[name], 16) == 0, (name, status[name])
    assert status["Uid"].split() == [str(attacker.host_uid)] * 4
    assert attacker.host_uid != victim.host_uid
    # The uid is the sandbox's: no process of the host runs as it, the agent's code included.
    running_as_it = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                     if str(attacker.host_uid) in _uids_of(pid)]  # fmt: skip
    assert running_as_it == []


def _uids_of(pid: int) -> list[str]:
    try:
        return host_status(pid)["Uid"].split()
    except (OSError, KeyError):
        return []


def test_setuid_to_root_fails(attacker: ProcessWorker) -> None:
    tried = attack(attacker, "become_root")
    assert tried["setuid"]["errno"] == "EPERM" and tried["setgid"]["errno"] == "EPERM"
    assert tried["uids"] == tried["gids"] == [attacker.host_uid] * 3


# The server's files and the host's ----------------------------------------------------------


def test_the_admin_credentials_the_store_and_the_hosts_shadow_cannot_be_read(
    host: Host, attacker: ProcessWorker
) -> None:
    paths = [str(host.data_dir / "admin-credentials.json"), str(host.data_dir / "state.db"), "/etc/shadow"]
    read = attack(attacker, "read_files", paths=paths)
    for path in paths:
        assert read[path]["error"] == "FileNotFoundError", read[path]


def test_root_home_and_the_data_dir_show_nothing_of_the_host(host: Host, attacker: ProcessWorker) -> None:
    paths = ["/root", "/home", "/var", "/etc", str(host.data_dir), str(host.data_dir / "w")]
    listed = attack(attacker, "list_dirs", paths=paths)
    visible_under_root = {
        Path(path).relative_to("/root").parts[0] for path in sys.path if path.startswith("/root/")
    }
    assert set(listed["/root"].get("result", [])) <= visible_under_root, listed["/root"]
    for missing in ("/home", "/var"):
        assert listed[missing]["error"] == "FileNotFoundError", listed[missing]
    etc = set(listed["/etc"]["result"])
    assert {"passwd", "group", "resolv.conf", "hosts"} <= etc
    assert not etc & {"shadow", "gshadow", "ssh", "sudoers", "subuid", "machine-id", "hostname"}
    assert set(listed[str(host.data_dir)]["result"]) <= {"code", "w"}
    assert listed[str(host.data_dir / "w")]["result"] == ["wattacker"]


def test_unmounting_and_mounting_fail(host: Host, attacker: ProcessWorker) -> None:
    tried = attack(attacker, "mounts", code_dir=str(host.code_dir))
    assert tried == dict.fromkeys(
        ("umount /usr", "umount code", "umount /", "mount tmpfs", "mount proc", "bind mount"), REFUSED
    )


def test_the_shared_code_dir_can_be_neither_remounted_nor_written(
    host: Host, attacker: ProcessWorker
) -> None:
    before = (host.code_dir / "agent.py").read_bytes()
    tried = attack(attacker, "change_code", code_dir=str(host.code_dir), entrypoint="agent.py")
    assert tried["remount"] == REFUSED
    for change in ("overwrite", "add", "chmod"):
        assert tried[change]["error"] == "PermissionError", tried[change]
    assert (host.code_dir / "agent.py").read_bytes() == before
    assert not (host.code_dir / "planted.py").exists()


# Other sessions -----------------------------------------------------------------------------


def test_another_sessions_files_and_socket_are_out_of_reach(
    host: Host, attacker: ProcessWorker, victim: ProcessWorker
) -> None:
    diary = str(host.data_dir / "w" / "wvictim" / "home" / "diary.txt")
    reached = attack(
        attacker, "reach_neighbour", paths=[diary], socket=str(victim.socket_path),
        work_root=str(host.data_dir / "w"),
    )  # fmt: skip
    assert reached[diary]["error"] == "FileNotFoundError"
    assert reached["socket"]["error"] == "FileNotFoundError"
    assert reached["work_root"]["result"] == ["wattacker"]


def test_the_sandbox_holds_the_agent_alone_and_no_host_pid_can_be_signalled(
    attacker: ProcessWorker, victim: ProcessWorker
) -> None:
    seen = attack(attacker, "processes", pid=victim.pid)
    assert seen["seen"] == {"1": sys.executable}  # the agent is its sandbox's pid 1, and alone
    assert seen["kill host pid"]["error"] == "ProcessLookupError"
    assert victim.alive()


# The files and socket the server uses --------------------------------------------------------


def test_the_agent_cannot_swap_its_log_for_a_link_the_server_would_follow(
    host: Host, attacker: ProcessWorker
) -> None:
    work_dir = host.data_dir / "w" / "wattacker"
    tried = attack(
        attacker, "swap_log", work_dir=str(work_dir), target=str(host.data_dir / "admin-credentials.json")
    )
    # Its home and socket dir are mounted inside; the dir around them is the root's, not writable.
    assert set(tried["see work dir"]["result"]) <= {"home", "sock"}
    assert tried["link"]["error"] == "PermissionError"
    assert not (work_dir / "worker.log").is_symlink() and not (work_dir / "worker.sock").is_symlink()
    assert "s3cret" not in attacker.log_path.read_text(errors="replace")


def test_a_socket_swapped_for_a_link_once_served_is_never_followed(
    host: Host, attacker: ProcessWorker, bait: tuple[Path, socket.socket]
) -> None:
    path, listener = bait
    swapped = attack(attacker, "swap_socket", target=str(path))
    assert swapped["link beside"] == {"result": None}  # its socket dir is its own
    # runsc 20221219 refuses to replace or unlink a socket the worker made (EPERM). The server does
    # not rely on that: it connects through its own link to the socket it took at the start.

    async def as_the_server_connects() -> bytes:
        reader, writer = await asyncio.open_unix_connection(str(attacker.socket_path))
        writer.write(b"GET /ping HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        return head

    assert host.loop.run(as_the_server_connects()).startswith(b"HTTP/1.1 200")
    assert attack(attacker, "status")["Uid"].split() == [str(attacker.host_uid)] * 4
    assert never_connected(listener)


def test_a_socket_swapped_for_a_link_before_it_is_taken_is_refused_or_never_followed(
    host: Host, bait: tuple[Path, socket.socket]
) -> None:
    path, listener = bait
    # The agent swaps its socket while it is imported, racing the server's first look at it: the
    # server either took the real socket first (and serves through it) or refuses the start.
    try:
        worker = host.start("wswapper", SWAP_SOCKET_AT_IMPORT=str(path))
    except WorkerStartFailed as failed:
        assert "its socket was refused" in failed.reason and "is not a socket" in failed.reason
    else:
        assert attack(worker, "status")["Uid"].split() == [str(worker.host_uid)] * 4
    assert never_connected(listener)


def test_no_socket_of_the_host_can_be_connected_to_from_inside(host: Host, attacker: ProcessWorker) -> None:
    # A socket of the host's, placed where the agent can see it: runsc's --host-uds=create lets a
    # worker make sockets the host connects to, never open one of the host's.
    path = host.data_dir / "w" / "wattacker" / "home" / "host.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        path.chmod(0o777)
        listener.listen(8)
        listener.setblocking(False)
        tried = attack(attacker, "connect_unix", path=str(path))
        assert "error" in tried, tried
        assert never_connected(listener)
    finally:
        listener.close()
        path.unlink(missing_ok=True)


# Namespaces and the kernel ------------------------------------------------------------------


def test_a_new_user_namespace_cannot_be_made_to_mount_in(attacker: ProcessWorker) -> None:
    tried = attack(attacker, "new_user_namespace")
    assert tried["unshare"]["errno"] in ("EPERM", "EINVAL")
    assert tried["mount after"] == REFUSED
    assert tried["unshare tool exit"] != 0


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("open_by_handle", {"errno": "ENOTSUP"}),
        ("keyring", {"errno": "EACCES"}),
        ("bpf", REFUSED),
        ("load_module", REFUSED),
        ("reboot", REFUSED),
        ("chroot", {"error": "PermissionError", "errno": "EPERM"}),
    ],
)
def test_calls_aimed_at_the_kernels_most_exposed_parts_never_reach_the_host(
    attacker: ProcessWorker, name: str, refused: dict[str, str]
) -> None:
    assert attack(attacker, name) == refused


def test_device_nodes_cannot_be_made_but_fifos_can(attacker: ProcessWorker) -> None:
    made = attack(attacker, "device_node")
    assert made["char device"]["error"] == made["block device"]["error"] == "PermissionError"
    assert made["fifo"] == {"result": None}


def test_raw_sockets_are_refused(attacker: ProcessWorker) -> None:
    tried = attack(attacker, "raw_socket")
    assert tried["icmp"]["error"] in ("PermissionError", "OSError")
    assert tried["packet"]["error"] in ("PermissionError", "OSError")


# Network ------------------------------------------------------------------------------------


def test_with_no_network_a_loopback_listener_of_the_host_sees_nothing_and_the_sentry_is_nobody(
    host: Host,
) -> None:
    isolated = ProcessBackend(sandbox="gvisor", network="none", state_dir=host.data_dir / "gvisor-isolated")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        worker = host.start("wisolated", isolated)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        tried = attack(worker, "connect", port=listener.getsockname()[1])
        assert tried["connect"]["error"] == "ConnectionRefusedError"
        assert tried["interfaces"] == ["lo"]
        assert never_connected(listener)
        # Without the host's network, runsc runs the sentry as nobody in a user namespace of its own.
        sentries = [pid for pid in sandbox_pids(worker)
                    if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"runsc-sandbox\0")]  # fmt: skip
        assert len(sentries) == 1
        assert host_status(sentries[0])["Uid"].split() == ["65534"] * 4
        assert os.readlink(f"/proc/{sentries[0]}/ns/user") != os.readlink("/proc/self/ns/user")
        host.loop.run(isolated.stop(worker, grace=0))
    finally:
        listener.close()
        isolated.close()


# What agents still do -----------------------------------------------------------------------


def test_threads_subprocesses_and_multiprocessing_still_work(attacker: ProcessWorker) -> None:
    done = attack(attacker, "everyday_work")
    assert done == {
        "clone3": {"errno": "ENOSYS"}, "thread": ["thread"], "subprocess": "subprocess", "posix_spawn": 0,
        "fork": 7, "spawn": [2, 4], "forkserver": [2, 4], "semaphore": True, "asyncio": "asyncio",
    }  # fmt: skip


def test_the_agent_writes_its_home_and_tmp_and_has_tls_and_names(victim: ProcessWorker) -> None:
    # The victim: its TMPDIR is its /tmp, where the attacker's earlier attacks left their scratch dir.
    done = attack(victim, "home_and_tmp")
    assert done["home"] == "mine" and done["tmpdir"] == 1024 and done["tmp"] == "private /tmp"
    assert done["user"] == "agent"
    assert done["ca certificates"] > 0
    assert done["localhost"] == ["127.0.0.1"]
