"""A worker's memory as the session list reports it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from open_agentcore.backends.memory import memory_bytes


def test_a_process_memory_is_its_resident_set_when_it_has_no_cgroup_of_its_own() -> None:
    # Python holding 64 MiB it has written: at least that much is resident.
    script = "import sys; b = b'x' * (64 << 20); print('ready', flush=True); sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        used = memory_bytes(child.pid)
        assert used is not None and used >= 64 << 20
    finally:
        child.kill()
        child.wait(10)


def test_a_worker_in_its_own_cgroup_is_charged_what_the_cgroup_says(tmp_path: Path) -> None:
    proc, cgroups = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text("0::/server.slice/open-agentcore/1-2-ab/worker-7\n")
    (proc / "42" / "statm").write_text("100 10 5 1 0 9 0\n")
    leaf = cgroups / "server.slice" / "open-agentcore" / "1-2-ab" / "worker-7"
    leaf.mkdir(parents=True)
    (leaf / "memory.current").write_text("123456789\n")
    assert memory_bytes(42, proc=proc, cgroup_root=cgroups) == 123456789
    (leaf / "memory.current").unlink()  # unreadable: the resident set instead
    assert memory_bytes(42, proc=proc, cgroup_root=cgroups) == 10 * os.sysconf("SC_PAGE_SIZE")


def test_a_process_that_is_gone_has_no_memory(tmp_path: Path) -> None:
    assert memory_bytes(999_999_999) is None
    assert memory_bytes(1, proc=tmp_path) is None
