"""The fork gate's descent check walks again when a parent vanishes mid-walk (a sandboxed session's
pid 1 outlives the process that forked it). Walking again must not let in a process that, once
reparented, no longer descends from the fork server."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from open_agentcore.backends import fork_gate
from tests.backends.test_fork_gate import chain  # noqa: F401 - the fixture


def test_an_orphan_reparented_outside_the_fork_server_is_refused_after_the_walk_again(
    chain: tuple[subprocess.Popen[str], int],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its parent (a child of this process) exits during the first walk; this process is no
    # subreaper, so the orphan goes to init (or the machine's subreaper), not to "the fork server".
    child, grandchild = chain
    real_parent = fork_gate.parent
    walked: list[int] = []

    def parent_while_the_middle_exits(pid: int) -> int | None:
        found = real_parent(pid)
        walked.append(pid)
        if pid == grandchild and walked.count(grandchild) == 1:
            child.kill()
            child.wait(10)
        return found

    monkeypatch.setattr(fork_gate, "parent", parent_while_the_middle_exits)
    try:
        with pytest.raises(fork_gate.GateRefused, match=f"pid {grandchild} is not a child"):
            fork_gate.check_descends(grandchild, os.getpid())
        assert walked.count(grandchild) >= 2  # it did walk again, and still refused
    finally:
        os.kill(grandchild, signal.SIGKILL)
