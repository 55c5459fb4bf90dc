"""Attacks only forked sessions invite: on the fork server that forked them, on their siblings
forked by the same one, and on another version's fork server. The server runs as root with
`--sandbox bwrap --session-start fork`; every attack of `test_worker_escape.py` also runs there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from open_agentcore.backends import ProcessBackend, ProcessWorker
from tests.conftest import wait_until
from tests.security.test_worker_escape import (
    ATTACKER,
    EventLoopThread,
    Server,
    attack,
    descendants,
    host_status,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    assert os.geteuid() == 0, "these attacks are about a server run as root"
    data_dir = tmp_path_factory.mktemp("data")
    data_dir.chmod(0o700)
    (data_dir / "admin-credentials.json").write_text('{"secretAccessKey": "s3cret"}')
    for version in ("1", "2"):
        code_dir = data_dir / "code" / "runtime-a" / version
        code_dir.mkdir(parents=True)
        shutil.copyfile(ATTACKER, code_dir / "agent.py")
        (code_dir / "agent.py").chmod(0o444)
        code_dir.chmod(0o555)
    loop = EventLoopThread()
    workers: list[ProcessWorker] = []
    backend = ProcessBackend(sandbox="bwrap", session_start="fork")
    assert backend.session_start_mode() == "fork"
    try:
        yield Server(loop, backend, data_dir, data_dir / "code" / "runtime-a" / "1", workers, "fork")
    finally:
        for worker in workers:
            loop.run(backend.stop(worker, grace=0))
        backend.close()
        loop.close()


@pytest.fixture(scope="module")
def attacker(server: Server) -> ProcessWorker:
    return server.start("wattacker")


@pytest.fixture(scope="module")
def sibling(server: Server) -> ProcessWorker:
    return server.start("wsibling")


@pytest.fixture(scope="module")
def other_version(server: Server) -> ProcessWorker:
    """A session of version 2, forked by version 2's own fork server."""
    first = server.code_dir
    server.code_dir = first.parent / "2"
    try:
        return server.start("wother")
    finally:
        server.code_dir = first


def fork_server_processes(server: Server) -> list[int]:
    """Every host process of every fork server (bubblewrap's, setpriv's, the interpreter's), not
    the sessions they forked nor the spares waiting for one."""
    found = []
    for outer in server.backend.fork_servers():
        found += [outer, *descendants(outer)]
    forked = [worker.pid for worker in server.workers] + server.backend.spares()
    sessions = {pid for worker in forked for pid in (worker, *descendants(worker))}
    return [pid for pid in found if pid not in sessions]


def test_sessions_are_forked_in_their_own_sandbox(
    attacker: ProcessWorker, sibling: ProcessWorker, other_version: ProcessWorker
) -> None:
    assert attacker.started_by == sibling.started_by == other_version.started_by == "fork"
    for worker in (attacker, sibling, other_version):
        status = attack(worker, "status")
        assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 0
        assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2")
        # Pid 2 of a namespace of its own: pid 1 is its reaper, and nothing else is there.
        assert set(attack(worker, "processes", pid=4_000_000)["seen"]) == {"1", "2"}


def test_fork_servers_run_confined_as_their_versions_uid_without_the_data_dir(
    server: Server, other_version: ProcessWorker
) -> None:
    pythons = [pid for pid in fork_server_processes(server) if host_status(pid)["Name"].startswith("python")]
    assert len(pythons) == 2  # one per version
    uids = set()
    for pid in pythons:
        status = host_status(pid)
        (uid,) = set(status["Uid"].split())
        uids.add(uid)
        assert int(uid) >= 2_000_000_000
        assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 0 and status["NoNewPrivs"] == "1"
        # A filter of its own from before the agent's import (a worker's but for unshare and mount).
        assert status["Seccomp"] == "2"
        root = Path(f"/proc/{pid}/root")
        assert not (root / server.data_dir.relative_to("/") / "admin-credentials.json").exists()
        assert not (root / server.data_dir.relative_to("/") / "w").exists()
    assert len(uids) == 2  # versions do not share a uid


def test_a_session_can_neither_see_nor_signal_any_fork_server_nor_a_sibling(
    server: Server, attacker: ProcessWorker, sibling: ProcessWorker, other_version: ProcessWorker
) -> None:
    targets = [*fork_server_processes(server), sibling.pid, other_version.pid]
    assert sibling.agent_pid is not None and other_version.agent_pid is not None
    targets += [sibling.agent_pid, other_version.agent_pid]
    # And the spares: forked ahead, waiting for the next sessions of either version.
    spares = wait_until(lambda: server.backend.spares() if len(server.backend.spares()) == 2 else None)
    targets += spares
    for pid in targets:
        seen = attack(attacker, "processes", pid=pid)
        assert seen["kill host pid"]["error"] == "ProcessLookupError", (pid, seen)
    # Nothing in its /proc but itself and its reaper.
    assert set(seen["seen"]) == {"1", "2"}
    assert sibling.alive() and other_version.alive() and len(server.backend.fork_servers()) == 2
    assert server.backend.spares() == spares


def test_a_sibling_sessions_home_tmp_and_shared_memory_are_not_there(
    attacker: ProcessWorker, sibling: ProcessWorker
) -> None:
    secrets = {"/home/agent/diary.txt": "the sibling's", "/tmp/diary.txt": "the sibling's",
               "/dev/shm/diary": "the sibling's"}  # fmt: skip
    assert attack(sibling, "write_files", files=secrets)["written"] == sorted(secrets)
    read = attack(attacker, "read_files", paths=sorted(secrets))
    for path in secrets:
        assert read[path]["error"] == "FileNotFoundError", read[path]
    again = attack(sibling, "read_files", paths=sorted(secrets))
    assert {path: again[path]["result"] for path in secrets} == secrets


def test_a_forked_session_holds_no_descriptor_of_its_fork_server_or_a_sibling_but_the_read_only_lifeline(
    server: Server, attacker: ProcessWorker, sibling: ProcessWorker
) -> None:
    held = attack(attacker, "held_files")
    targets = {entry["target"] for entry in held.values()}
    assert not any("fork-server" in target or "wsibling" in target for target in targets), held
    theirs = set()
    spares = [pid for spare in server.backend.spares() for pid in (spare, *descendants(spare))]
    for pid in [*fork_server_processes(server), sibling.pid, *descendants(sibling.pid), *spares]:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                theirs.add(os.readlink(fd))
            except OSError:
                continue
    # (anon_inode links name a kind, not an object: every eventfd reads the same, so they prove nothing)
    shared = {target for target in targets & theirs if target.startswith(("socket:", "pipe:"))}
    # Only the lifeline, a pipe whose write end only the server holds: it can only learn the server ended.
    assert len(shared) <= 1 and all(target.startswith("pipe:") for target in shared), shared
    assert not any(entry["writable pipe"] for entry in held.values() if entry["target"] in shared)


def test_the_covers_over_the_fork_servers_proc_tmp_and_home_stay(attacker: ProcessWorker) -> None:
    # Under its /proc lie the fork server's and, under that, the host's; under its /tmp, /home and
    # /dev/shm, the fork server's, which every session of the version would share.
    covers = ["/proc", "/tmp", "/home", "/dev/shm"]
    assert attack(attacker, "unmount", paths=covers) == {cover: {"errno": "EPERM"} for cover in covers}
    assert set(attack(attacker, "processes", pid=4_000_000)["seen"]) == {"1", "2"}
