"""Per-session limits: `backends/limits.py`, `backends/cgroup_limits.py`, `backends/rlimits.py`,
`backends/cgroups.py`.

Most tests run real processes under real cgroup v1 limits on this host (CI runs as root on the
same kind of machine: cgroup v1 writable, cgroup v2 with hugetlb only). Others build fake cgroup
trees in temporary dirs to test mode choice and file writes for hosts we do not have; the
kernel's rules are not in those fakes, so they test our logic only, below the kernel boundary.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from open_agentcore.backends import SessionLimits
from open_agentcore.backends.cgroup_limits import CgroupEnforcer, CgroupWorker
from open_agentcore.backends.limits import LimitEnforcer, LimitMode, LimitsUnavailable, detect_limits
from tests.conftest import wait_until

MiB = 1024**2
SMALL = SessionLimits(memory_bytes=64 * MiB, cpus=0.1, pids=16)
PLACEMENT = "open-agentcore"

Start = Callable[..., tuple[CgroupWorker, "subprocess.Popen[str]"]]


# -- real cgroups ---------------------------------------------------------------------------------


def _force_remove(cgroup: Path) -> None:
    """Empty and remove a real cgroup tree bottom-up, whatever the code under test left behind."""
    if not cgroup.is_dir():
        return
    for child in cgroup.iterdir():
        if child.is_dir():
            _force_remove(child)
    for pid in (cgroup / "cgroup.procs").read_text().split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    wait_until(lambda: not (cgroup / "cgroup.procs").read_text().strip(), timeout=10)

    def removed() -> bool:
        try:
            cgroup.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        return True

    wait_until(removed, timeout=10)


@pytest.fixture
def enforcer() -> Iterator[CgroupEnforcer]:
    """This host's enforcer (cgroup v1) with small limits; all it made is removed afterwards."""
    made = detect_limits(SMALL)
    instance_dirs = made.instance_dirs if isinstance(made, CgroupEnforcer) else ()
    try:
        assert isinstance(made, CgroupEnforcer), made.describe()
        assert made.mode is LimitMode.CGROUP_V1, made.describe()
        yield made
    finally:
        made.close()
        for instance_dir in instance_dirs:
            _force_remove(instance_dir)
            with contextlib.suppress(OSError):
                instance_dir.parent.rmdir()  # the shared placement dir, unless others use it


@pytest.fixture
def start(enforcer: CgroupEnforcer) -> Iterator[Start]:
    """`start(code, worker_id="w1")`: Python code run as a limited worker; ended afterwards."""
    started: list[tuple[CgroupWorker, subprocess.Popen[str]]] = []

    def run(code: str, worker_id: str = "w1") -> tuple[CgroupWorker, subprocess.Popen[str]]:
        limits = enforcer.create(worker_id, own_uid=False)
        command = [*limits.command_prefix(), sys.executable, "-c", textwrap.dedent(code)]
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        started.append((limits, process))
        return limits, process

    yield run
    for limits, process in started:
        limits.close()
        process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


ALLOCATE = """
chunks = []
for _ in range({size} // (4 << 20)):
    chunks.append(b"\\xff" * (4 << 20))  # written, so the pages are really charged
print("allocated", flush=True)
"""


def test_process_past_its_memory_limit_is_oom_killed(start: Start) -> None:
    limits, process = start(ALLOCATE.format(size=256 * MiB))
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert limits.out_of_memory()


def test_process_under_its_memory_limit_is_not_out_of_memory(start: Start) -> None:
    limits, process = start(ALLOCATE.format(size=16 * MiB))
    assert process.wait(timeout=30) == 0
    assert not limits.out_of_memory()
    assert limits.usage()["memory_peak_bytes"] >= 16 * MiB


FORK_BOMB = """
import os, sys
read_end, write_end = os.pipe()
made = refused = 0
for _ in range(64):
    try:
        pid = os.fork()
    except BlockingIOError:  # EAGAIN: the pids limit
        refused += 1
        continue
    if pid == 0:
        os.close(write_end)
        os.read(read_end, 1)  # held until the parent closes its end
        os._exit(0)
    made += 1
print(made, refused, flush=True)
sys.stdin.read()
os.close(write_end)
for _ in range(made):
    os.wait()
"""


def test_fork_bomb_gets_eagain_at_the_pids_limit(start: Start) -> None:
    limits, process = start(FORK_BOMB)
    assert process.stdout is not None and process.stdin is not None
    made, refused = map(int, process.stdout.readline().split())
    assert (made, refused) == (SMALL.pids - 1, 64 - (SMALL.pids - 1))
    usage = limits.usage()
    assert usage["pids"] == SMALL.pids
    assert usage["pids_peak"] <= SMALL.pids
    # The host is unaffected: this test process still starts processes while the bomb is held.
    assert subprocess.run(["true"], check=False).returncode == 0
    process.stdin.close()
    assert process.wait(timeout=30) == 0


def test_cpu_hog_is_throttled(start: Start) -> None:
    limits, process = start(
        """
        import time
        end = time.monotonic() + 30  # bounded even if the test dies
        while time.monotonic() < end:
            pass
        """
    )
    wait_until(lambda: limits.usage().get("cpu_throttled_periods", 0) > 0, timeout=20)
    assert process.poll() is None


def test_process_is_in_its_cgroups_before_its_first_instruction(start: Start) -> None:
    limits, process = start("print(open('/proc/self/cgroup').read(), flush=True)", worker_id="first")
    out, _ = process.communicate(timeout=30)
    instance = limits.cgroups[0].parent.name
    paths = {line.split(":")[1]: line.split(":", 2)[2] for line in out.split()}
    for controller in ("memory", "cpu", "pids", "cpuacct"):
        assert paths[controller].endswith(f"/{PLACEMENT}/{instance}/first"), paths


STRAGGLER = """
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        import time
        time.sleep(60)  # a straggler: outlives its parent, in a session and group of its own
        os._exit(0)
    os._exit(0)
os.wait()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _straggler(limits: CgroupWorker) -> int:
    """The pid of the one process left in the worker's cgroups once the worker itself has exited."""
    memory = limits.cgroups[0] / "cgroup.procs"
    return int(wait_until(lambda: memory.read_text().strip() or None, timeout=10))


def test_kill_ends_a_double_forked_setsid_straggler(start: Start) -> None:
    limits, process = start(STRAGGLER)
    assert process.wait(timeout=30) == 0
    straggler = _straggler(limits)
    # A process-group or session kill of the worker would miss it.
    assert os.getpgid(straggler) != process.pid and os.getsid(straggler) != process.pid
    assert _alive(straggler)
    limits.kill()
    wait_until(lambda: not _alive(straggler), timeout=10)
    limits.kill()  # idempotent


def test_close_removes_the_cgroups_and_may_be_repeated(start: Start) -> None:
    limits, process = start(STRAGGLER)
    assert process.wait(timeout=30) == 0
    straggler = _straggler(limits)
    limits.close()  # kills what is left first
    assert not any(cgroup.exists() for cgroup in limits.cgroups)
    assert not _alive(straggler)
    limits.close()
    limits.kill()


def test_create_refuses_a_worker_id_in_use_and_leaves_nothing_half_made(enforcer: CgroupEnforcer) -> None:
    # A dir left in the last hierarchy only: memory and cpu are made first, then pids fails.
    pids_instance = next(path for path in enforcer.instance_dirs if "pids" in path.parts)
    (pids_instance / "taken").mkdir()
    try:
        with pytest.raises(LimitsUnavailable, match=r"cannot limit worker taken: File exists: .*/taken"):
            enforcer.create("taken", own_uid=False)
        others = [path / "taken" for path in enforcer.instance_dirs if path != pids_instance]
        assert not any(path.exists() for path in others)
    finally:
        (pids_instance / "taken").rmdir()


# -- leftovers of servers that died ---------------------------------------------------------------

DEAD_SERVER = "99999999-1-dead"  # no process has that pid (past the kernel's pid_max ceiling)


def test_empty_dirs_of_a_dead_server_are_removed(enforcer: CgroupEnforcer) -> None:
    dead = [path.parent / DEAD_SERVER for path in enforcer.instance_dirs]
    for path in dead:
        (path / "w1").mkdir(parents=True)
    try:
        again = detect_limits(SMALL)
        again.close()
        assert not any(path.exists() for path in dead)
    finally:
        for path in dead:
            _force_remove(path)


def test_dirs_of_a_dead_server_that_still_hold_a_process_are_left_alone(enforcer: CgroupEnforcer) -> None:
    leaves = [path.parent / DEAD_SERVER / "w1" for path in enforcer.instance_dirs]
    for leaf in leaves:
        leaf.mkdir(parents=True)
    holder = subprocess.Popen(
        ["/bin/sh", "-c", 'for f; do echo $$ > "$f"; done; exec sleep 60', "sh"]
        + [str(leaf / "cgroup.procs") for leaf in leaves]
    )
    try:
        wait_until(lambda: all((leaf / "cgroup.procs").read_text().strip() for leaf in leaves))
        again = detect_limits(SMALL)
        again.close()
        assert all(leaf.is_dir() for leaf in leaves)
    finally:
        holder.kill()
        holder.wait(timeout=10)
        for leaf in leaves:
            _force_remove(leaf.parent)


def test_empty_dirs_of_a_live_server_are_left_alone(enforcer: CgroupEnforcer) -> None:
    again = detect_limits(SMALL)
    assert isinstance(again, CgroupEnforcer)
    try:
        assert all(path.is_dir() for path in enforcer.instance_dirs)
    finally:
        again.close()
        for path in again.instance_dirs:
            _force_remove(path)


# -- rlimits, with real processes -----------------------------------------------------------------


@pytest.fixture(params=["prlimit", "python"])
def rlimit_enforcer(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> LimitEnforcer:
    """An rlimit enforcer (no cgroups at the given paths), through prlimit or, where that is
    missing, through the server's own interpreter."""
    if request.param == "python":
        monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    else:
        assert shutil.which("prlimit"), "util-linux prlimit is part of the test machine"
    limits = SessionLimits(memory_bytes=256 * MiB, cpus=1, pids=16)
    made = detect_limits(limits, cgroup_root=tmp_path / "none", self_cgroup=tmp_path / "none" / "cgroup")
    assert made.mode is LimitMode.RLIMIT
    return made


def test_rlimit_allocation_past_the_address_space_limit_raises_memory_error(
    rlimit_enforcer: LimitEnforcer,
) -> None:
    limits = rlimit_enforcer.create("w1", own_uid=False)
    code = "try:\n    b = bytearray(512 << 20)\nexcept MemoryError:\n    print('MemoryError')\n"
    done = subprocess.run(
        [*limits.command_prefix(), sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout.strip()) == (0, "MemoryError"), done.stderr


def _process_limits(own_uid: bool, enforcer: LimitEnforcer) -> dict[str, str]:
    """The rlimits of a worker started through the enforcer's prefix, as /proc/<pid>/limits shows them."""
    limits = enforcer.create("w1", own_uid=own_uid)
    process = subprocess.Popen(
        [*limits.command_prefix(), sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        # Once the worker's own command runs (not prlimit, nor the python fallback), its limits are set.
        cmdline = Path(f"/proc/{process.pid}/cmdline")
        own_command = [sys.executable.encode(), b"-c", b"import sys; sys.stdin.read()", b""]
        wait_until(lambda: cmdline.read_bytes().split(b"\0") == own_command)
        rows = Path(f"/proc/{process.pid}/limits").read_text().splitlines()[1:]
        return {row[:26].strip(): " ".join(row[26:].split()[:2]) for row in rows}
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)


def test_rlimit_with_own_uid_caps_processes(rlimit_enforcer: LimitEnforcer) -> None:
    seen = _process_limits(True, rlimit_enforcer)
    assert seen["Max processes"] == "16 16"
    assert seen["Max address space"] == f"{256 * MiB} {256 * MiB}"
    assert rlimit_enforcer.describe(own_uid=True)["pids"] == "16 (rlimit, per worker uid)"


def test_rlimit_without_own_uid_leaves_the_shared_uids_process_cap_alone(
    rlimit_enforcer: LimitEnforcer,
) -> None:
    own = Path("/proc/self/limits").read_text()
    expected = next(
        " ".join(row[26:].split()[:2]) for row in own.splitlines() if row.startswith("Max processes")
    )
    assert _process_limits(False, rlimit_enforcer)["Max processes"] == expected
    described = rlimit_enforcer.describe(own_uid=False)
    assert described["pids"] == "not limited: workers share the server's uid"
    assert described["cpu"] == "not limited: no writable cgroup"
    assert described["memory"] == "256 MiB of address space (rlimit)"


# -- fake cgroup trees: mode choice and file writes for hosts we do not have ----------------------
# Logic tests below the kernel boundary: these trees are plain dirs and files, so they check which
# mode is picked and which values land in which files, not what the kernel makes of them.

ALL_V2 = "cpuset cpu io memory hugetlb pids rdma misc"


def _write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def fake_v2_host(
    root: Path, own: str = "/system.slice/agentcore.service", procs: str = ""
) -> tuple[Path, Path]:
    """A cgroup v2-only host (cgroup root, /proc/self/cgroup); the server is in `own`, which holds `procs`."""
    cgroup_root = root / "cgroup"
    for name, text in (("cgroup.controllers", ALL_V2), ("cgroup.subtree_control", "cpu memory pids")):
        _write(cgroup_root / name, text)
    _write(cgroup_root / "cgroup.procs", "1\n")
    if own != "/":
        own_dir = cgroup_root / own.lstrip("/")
        files = {"cgroup.controllers": ALL_V2, "cgroup.subtree_control": "", "cgroup.type": "domain",
                 "cgroup.procs": procs, "memory.swap.max": "max", "memory.oom.group": "0",
                 "cgroup.kill": ""}  # fmt: skip
        for name, text in files.items():
            _write(own_dir / name, text)
    _write(root / "self-cgroup", f"0::{own}\n")
    return cgroup_root, root / "self-cgroup"


def fake_v1_host(
    root: Path, co_mounted: bool = False, cpu_quota: int = -1, own_memory: str = "/process_api/abc"
) -> tuple[Path, Path]:
    """A hybrid host like this one: v1 memory, cpu, cpuacct and pids; v2 with hugetlb only."""
    cgroup_root = root / "cgroup"
    _write(cgroup_root / "unified" / "cgroup.controllers", "hugetlb")
    _write(cgroup_root / "unified" / "cgroup.subtree_control", "")
    _write(cgroup_root / "unified" / "cgroup.procs", f"{os.getpid()}\n")
    cpu = "cpu,cpuacct" if co_mounted else "cpu"
    mounts = {"memory": own_memory, cpu: "/", "pids": "/", **({} if co_mounted else {"cpuacct": "/"})}
    for mount, own in mounts.items():
        for name in ("cgroup.procs", "tasks"):
            _write(cgroup_root / mount / name)
        _write(cgroup_root / mount / own.lstrip("/") / "cgroup.procs", f"{os.getpid()}\n")
    memory = cgroup_root / "memory" / own_memory.lstrip("/")
    for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
        _write(memory / name, "9223372036854771712")
    _write(cgroup_root / cpu / "cpu.cfs_quota_us", str(cpu_quota))
    _write(cgroup_root / cpu / "cpu.cfs_period_us", "100000")
    if co_mounted:
        (cgroup_root / "cpu").symlink_to("cpu,cpuacct")
        (cgroup_root / "cpuacct").symlink_to("cpu,cpuacct")
    lines = ["8:pids:/", f"4:memory:{own_memory}", "0::/"]
    lines += ["2:cpu,cpuacct:/"] if co_mounted else ["2:cpuacct:/", "1:cpu:/"]
    _write(root / "self-cgroup", "\n".join(lines) + "\n")
    return cgroup_root, root / "self-cgroup"


def _read(path: Path) -> str:
    return path.read_text().strip()


def test_v2_only_host_uses_cgroup_v2_and_moves_the_server_into_a_leaf(tmp_path: Path) -> None:
    cgroup_root, self_cgroup = fake_v2_host(tmp_path, procs=f"{os.getpid()}\n")
    made = detect_limits(SessionLimits(memory_bytes=512 * MiB, cpus=0.5, pids=64), cgroup_root, self_cgroup)
    assert made.mode is LimitMode.CGROUP_V2
    assert made.describe() == {"memory": "512 MiB (cgroup v2)", "cpu": "0.5 CPU (cgroup v2 cpu.max)",
                               "pids": "64 (cgroup v2)"}  # fmt: skip
    own = cgroup_root / "system.slice" / "agentcore.service"
    (instance,) = (path for path in (own / PLACEMENT).iterdir() if path.is_dir() and "." not in path.name)
    # v2 keeps processes out of cgroups with controllers enabled below: the server leaves `own`
    # for a leaf of its own before enabling them, down to its instance dir.
    assert _read(own / PLACEMENT / f"{instance.name}.server" / "cgroup.procs") == str(os.getpid())
    for cgroup in (own, own / PLACEMENT, instance):
        assert _read(cgroup / "cgroup.subtree_control") == "+memory +cpu +pids"
    worker = made.create("w1", own_uid=True)
    assert worker.command_prefix()[-2:] == [str(instance / "w1" / "cgroup.procs"), "--"]
    written = {path.name: _read(path) for path in (instance / "w1").iterdir()}
    assert written == {"memory.max": str(512 * MiB), "memory.swap.max": "0", "memory.oom.group": "1",
                       "cpu.max": "50000 100000", "pids.max": "64"}  # fmt: skip


def test_v2_root_cgroup_needs_no_leaf_for_the_server(tmp_path: Path) -> None:
    cgroup_root, self_cgroup = fake_v2_host(tmp_path, own="/")
    made = detect_limits(SMALL, cgroup_root, self_cgroup)
    assert made.mode is LimitMode.CGROUP_V2
    assert [
        path.name.endswith(".server") for path in (cgroup_root / PLACEMENT).iterdir() if path.is_dir()
    ] == [False]
    assert _read(cgroup_root / "cgroup.subtree_control") == "cpu memory pids"  # enabled already, untouched


def test_v2_cgroup_shared_with_other_processes_is_not_used(tmp_path: Path) -> None:
    cgroup_root, self_cgroup = fake_v2_host(tmp_path, procs=f"{os.getpid()}\n1\n")
    made = detect_limits(SMALL, cgroup_root, self_cgroup)
    assert made.mode is LimitMode.RLIMIT
    assert "holds 1 process(es) besides this server" in made.describe()["reason"]
    assert not (cgroup_root / "system.slice" / "agentcore.service" / PLACEMENT).exists()


def test_hybrid_host_uses_cgroup_v1_in_each_hierarchy(tmp_path: Path) -> None:
    cgroup_root, self_cgroup = fake_v1_host(tmp_path)
    made = detect_limits(SessionLimits(memory_bytes=8 * 1024**3, cpus=2, pids=1024), cgroup_root, self_cgroup)
    assert made.mode is LimitMode.CGROUP_V1
    assert made.describe() == {
        "memory": "8 GiB (cgroup v1)",
        "cpu": "2 CPUs (cgroup v1 CFS quota)",
        "pids": "1024 (cgroup v1)",
        "reason": f"cgroup v2: memory, cpu, pids not available in {cgroup_root}/unified (it offers: hugetlb)",
    }
    worker = made.create("w1", own_uid=False)
    instance = worker.cgroups[0].parent.name
    owns = {"memory": "process_api/abc", "cpu": "", "pids": "", "cpuacct": ""}
    dirs = {name: cgroup_root / name / own / PLACEMENT / instance / "w1" for name, own in owns.items()}
    assert worker.command_prefix()[4:] == [*(str(path / "tasks") for path in dirs.values()), "--"]
    assert {name: {file.name: _read(file) for file in path.iterdir()} for name, path in dirs.items()} == {
        "memory": {
            "memory.limit_in_bytes": str(8 * 1024**3),
            "memory.memsw.limit_in_bytes": str(8 * 1024**3),
        },
        "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "200000"},
        "pids": {"pids.max": "1024"},
        "cpuacct": {},
    }


def test_cpu_and_cpuacct_mounted_together_share_one_cgroup(tmp_path: Path) -> None:
    cgroup_root, self_cgroup = fake_v1_host(tmp_path, co_mounted=True)
    made = detect_limits(SMALL, cgroup_root, self_cgroup)
    assert made.mode is LimitMode.CGROUP_V1
    worker = made.create("w1", own_uid=False)
    cpu = cgroup_root / "cpu,cpuacct" / PLACEMENT / worker.cgroups[0].parent.name / "w1"
    assert len(worker.command_prefix()) == 4 + 3 + 1  # memory, cpu+cpuacct, pids
    assert str(cpu / "tasks") in worker.command_prefix()
    assert _read(cpu / "cpu.cfs_quota_us") == "10000"
    _write(cpu / "cpuacct.usage", "123456789")
    assert worker.usage()["cpu_ns"] == 123456789


def test_v1_cpu_quota_is_capped_by_the_servers_own_cgroup(tmp_path: Path) -> None:
    # v1 refuses a child quota above its ancestors'; asking for it would fail every session.
    cgroup_root, self_cgroup = fake_v1_host(tmp_path, cpu_quota=50_000)
    made = detect_limits(SessionLimits(cpus=2), cgroup_root, self_cgroup)
    worker = made.create("w1", own_uid=False)
    assert (
        _read(cgroup_root / "cpu" / PLACEMENT / worker.cgroups[0].parent.name / "w1" / "cpu.cfs_quota_us")
        == "50000"
    )
    assert made.describe()["cpu"] == (
        "0.5 CPU (cgroup v1 CFS quota; 2 CPUs asked, more than the server's own cgroup allows)"
    )


def test_container_that_mounts_only_its_own_cgroup_places_workers_under_it(tmp_path: Path) -> None:
    # /proc/self/cgroup names the host's path, but the mount's root is the container's cgroup.
    cgroup_root, self_cgroup = fake_v1_host(tmp_path, own_memory="/")
    self_cgroup.write_text(self_cgroup.read_text().replace("4:memory:/", "4:memory:/docker/0123abcd"))
    (cgroup_root / "memory" / "cgroup.procs").write_text(f"{os.getpid()}\n")
    made = detect_limits(SMALL, cgroup_root, self_cgroup)
    assert made.mode is LimitMode.CGROUP_V1
    assert (cgroup_root / "memory" / PLACEMENT).is_dir()


def test_host_without_cgroups_uses_rlimits_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "cgroup").mkdir()
    _write(tmp_path / "self-cgroup", "0::/\n")
    made = detect_limits(SMALL, tmp_path / "cgroup", tmp_path / "self-cgroup")
    assert made.mode is LimitMode.RLIMIT
    assert made.describe()["reason"] == (
        f"cgroup v2: no cgroup v2 hierarchy is mounted at {tmp_path}/cgroup or {tmp_path}/cgroup/unified; "
        "cgroup v1: this process is in no cgroup v1 memory hierarchy"
    )
    no_proc = detect_limits(SMALL, tmp_path / "cgroup", tmp_path / "missing")
    assert no_proc.mode is LimitMode.RLIMIT and "cannot read" in no_proc.describe()["reason"]


DETECT = """
import json, sys
from pathlib import Path
from open_agentcore.backends import SessionLimits
from open_agentcore.backends.limits import detect_limits
made = detect_limits(SessionLimits(), Path(sys.argv[1]), Path(sys.argv[2]))
print(json.dumps([made.mode.value, made.describe()]))
"""


@pytest.mark.parametrize("host", [fake_v1_host, fake_v2_host])
def test_read_only_cgroups_use_rlimits(tmp_path: Path, host: Callable[[Path], tuple[Path, Path]]) -> None:
    cgroup_root, self_cgroup = host(tmp_path)
    # A real read-only mount (root ignores file modes), in a mount namespace of the child's own.
    remount = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", remount, str(tmp_path)]
    done = subprocess.run(
        [*command, sys.executable, "-c", DETECT, str(cgroup_root), str(self_cgroup)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    mode, described = json.loads(done.stdout)
    assert mode == "rlimit"
    assert "Read-only file system" in described["reason"]
    assert not any(path.name == PLACEMENT for path in cgroup_root.rglob("*"))
