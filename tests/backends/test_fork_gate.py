"""The fork gate's check that a pid descends from its version's fork server, on real processes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from open_agentcore.backends import fork_gate

PR_SET_CHILD_SUBREAPER = 36

# A child that starts a grandchild and prints its pid, then waits to be told to exit.
CHAIN = """
import subprocess, sys
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(grandchild.pid, flush=True)
sys.stdin.read()
grandchild.kill()
"""


@pytest.fixture
def chain() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """This process → a child → a grandchild (its pid), all real; ended afterwards."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHAIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    grandchild = int(child.stdout.readline())
    try:
        yield child, grandchild
    finally:
        child.kill()
        child.wait(10)


def test_a_grandchild_descends_from_this_process(chain: tuple[subprocess.Popen[str], int]) -> None:
    child, grandchild = chain
    fork_gate.check_descends(grandchild, os.getpid())
    fork_gate.check_descends(grandchild, child.pid)


def test_a_process_of_another_tree_is_refused(chain: tuple[subprocess.Popen[str], int]) -> None:
    child, grandchild = chain
    with pytest.raises(fork_gate.GateRefused, match=f"pid {os.getpid()} is not a child"):
        fork_gate.check_descends(os.getpid(), child.pid)
    with pytest.raises(fork_gate.GateRefused):
        fork_gate.check_descends(grandchild, None)


def test_a_pid_that_is_gone_is_refused() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait(10)
    with pytest.raises(fork_gate.GateRefused):
        fork_gate.check_descends(done.pid, os.getpid())


def test_a_parent_that_exits_during_the_walk_does_not_refuse_its_reparented_child(
    chain: tuple[subprocess.Popen[str], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sandboxed session's pid 1 is forked by a process that exits at once: the walk can read the
    # child's parent, then find that parent gone. The kernel has reparented the child by then; here
    # the child really exits while the first walk is under way, and its grandchild is reparented.
    child, grandchild = chain
    real_parent = fork_gate.parent
    seen: list[int] = []

    def parent_while_the_middle_exits(pid: int) -> int | None:
        found = real_parent(pid)
        if pid == grandchild and not seen:
            seen.append(pid)
            child.kill()  # the middle process goes between the two reads, as in the race
            child.wait(10)
        return found

    monkeypatch.setattr(fork_gate, "parent", parent_while_the_middle_exits)
    # An orphan goes to the nearest subreaper: this process, made one as a fork server makes itself.
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        fork_gate.check_descends(grandchild, os.getpid())
        assert seen == [grandchild]  # the middle process did go during the walk
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(grandchild, signal.SIGKILL)
            os.waitpid(grandchild, 0)  # ours to reap since it was reparented
