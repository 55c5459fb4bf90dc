"""Worker usage read from /proc when no cgroup knows the worker, and CPU time that stays counted
after a worker ends; real processes throughout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from open_agentcore.backends.process_tree import children
from open_agentcore.metrics import PROC, Census, SessionCollector, worker_usage
from tests.conftest import wait_until
from tests.metrics.test_metrics import samples, value

MIB = 1024 * 1024
# Holds 64 MiB, burns some CPU, starts a child holding 32 MiB, says so, and waits.
WORKER = """
import subprocess, sys, time
held = bytearray(64 * 1024 * 1024)
for i in range(len(held) // 4096):
    held[i * 4096] = 1
deadline = time.process_time() + 0.2
while time.process_time() < deadline:
    pass
child = subprocess.Popen([sys.executable, "-c",
    "import sys, time; held = bytearray(32 * 1024 * 1024); held[::4096] = b'x' * len(held[::4096]); "
    "print('child', flush=True); time.sleep(600)"], stdout=sys.stdout)
time.sleep(600)
"""


@dataclass
class Worker:
    """A worker process as the session table holds it: no limits, so no cgroup to read."""

    process: subprocess.Popen[bytes]
    worker_id: str = "wtest"
    socket_path: Path = Path("/nonexistent")
    log_path: Path = Path("/nonexistent")
    sandboxed: bool = False
    limits: None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    async def wait_exit(self) -> int:
        return self.process.wait()


@pytest.fixture
def worker() -> Iterator[Worker]:
    process = subprocess.Popen([sys.executable, "-c", WORKER], stdout=subprocess.PIPE)
    started: list[int] = []
    try:
        assert process.stdout is not None and process.stdout.readline() == b"child\n"
        started = children(process.pid)  # its child, which outlives it when a test kills it
        yield Worker(process)
    finally:
        for child in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        process.kill()
        process.wait()


def test_without_a_cgroup_usage_is_summed_over_the_workers_processes(worker: Worker) -> None:
    usage = worker_usage(worker)
    assert usage is not None and usage.source == PROC
    assert usage.memory_bytes >= (64 + 32) * MIB  # its child's memory is the worker's too
    assert usage.cpu_seconds >= 0.2


def test_a_worker_that_is_gone_has_no_usage(worker: Worker) -> None:
    worker.process.kill()
    worker.process.wait()
    assert worker_usage(worker) is None


def test_cpu_time_stays_counted_after_its_worker_ends(worker: Worker) -> None:
    collector = SessionCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    collector.census = Census([("rt-AAAAAAAAAA", "idle", worker)], {})
    seen = value(samples(generate_latest(registry).decode()), "agentcore_worker_cpu_seconds_total",
                 runtime="rt-AAAAAAAAAA", source=PROC)  # fmt: skip
    assert seen is not None and seen >= 0.2
    worker.process.kill()
    wait_until(lambda: worker.process.poll() is not None)
    collector.census = Census([], {})
    after = samples(generate_latest(registry).decode())
    assert value(after, "agentcore_worker_cpu_seconds_total", runtime="rt-AAAAAAAAAA", source=PROC) == seen
    # No live worker: no memory, and no session of any state.
    assert [
        name for name, _ in after if name in ("agentcore_worker_memory_bytes", "agentcore_sessions")
    ] == []
