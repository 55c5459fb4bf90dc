"""What is read at scrape time: live sessions by state, warm workers, and what workers use.

A `Census` is taken on the event loop (the session table is only consistent there); the usage of
each worker is read later, off the loop, while the registry renders.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from open_agentcore.backends import WorkerHandle
from open_agentcore.sessions import SessionManager

from .workers import worker_usage

BUSY = "busy"  # a call is in flight
IDLE = "idle"  # no call in flight: the idle timeout runs


@dataclass(frozen=True)
class Census:
    """The session table at one instant: (runtime id, state, worker) per live session, and warm
    workers ready per runtime."""

    sessions: list[tuple[str, str, WorkerHandle]] = field(default_factory=list)
    warm: dict[str, int] = field(default_factory=dict)


def take_census(manager: SessionManager) -> Census:
    """The session table of `manager` now (call it on the event loop)."""
    sessions = [
        (live.target.runtime_id, BUSY if live.in_flight else IDLE, live.handle) for live in manager.sessions()
    ]
    warm: dict[str, int] = {}
    for (runtime_id, _), count in manager.warm_workers().items():
        warm[runtime_id] = warm.get(runtime_id, 0) + count
    return Census(sessions, warm)


class SessionCollector(Collector):
    """Renders the census set last (`census`): session and worker gauges, and CPU time as a counter.

    CPU time stays monotonic across session ends: what a worker had used at the last scrape that
    saw it is kept for its runtime once it is gone (its time after that scrape is not counted).
    """

    def __init__(self) -> None:
        self.census = Census()
        self._last_cpu: dict[str, tuple[str, str, float]] = {}  # worker id -> (runtime, source, seconds)
        self._retired_cpu: dict[tuple[str, str], float] = {}  # (runtime, source) -> seconds

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        live, memory, cpu = self._families()
        counts: dict[tuple[str, str], int] = {}
        for runtime_id, state, _ in self.census.sessions:
            counts[(runtime_id, state)] = counts.get((runtime_id, state), 0) + 1
        for runtime_id, warm in self.census.warm.items():
            counts[(runtime_id, "warm")] = warm
        for (runtime_id, state), count in sorted(counts.items()):
            live.add_metric([runtime_id, state], count)
        memory_of: dict[tuple[str, str], int] = {}
        cpu_of = dict(self._retired_cpu)
        seen: dict[str, tuple[str, str, float]] = {}
        for runtime_id, _, handle in self.census.sessions:
            usage = worker_usage(handle)
            if usage is None:
                continue
            key = (runtime_id, usage.source)
            memory_of[key] = memory_of.get(key, 0) + usage.memory_bytes
            cpu_of[key] = cpu_of.get(key, 0.0) + usage.cpu_seconds
            seen[handle.worker_id] = (runtime_id, usage.source, usage.cpu_seconds)
        for worker_id, (runtime_id, source, seconds) in self._last_cpu.items():
            if worker_id not in seen:
                key = (runtime_id, source)
                self._retired_cpu[key] = self._retired_cpu.get(key, 0.0) + seconds
                cpu_of[key] = cpu_of.get(key, 0.0) + seconds
        self._last_cpu = seen
        for (runtime_id, source), value in sorted(memory_of.items()):
            memory.add_metric([runtime_id, source], value)
        for (runtime_id, source), seconds in sorted(cpu_of.items()):
            cpu.add_metric([runtime_id, source], seconds)
        yield from (live, memory, cpu)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
        live = GaugeMetricFamily(
            "agentcore_sessions",
            "Live sessions by state: busy (a call in flight), idle (none), and warm (started workers "
            "waiting for a new session).",
            labels=["runtime", "state"],
        )
        memory = GaugeMetricFamily(
            "agentcore_worker_memory_bytes",
            "Memory in use by the runtime's live workers: memory.current (v2) or memory.usage_in_bytes "
            "(v1) of each session's cgroup where the server limits sessions with cgroups "
            '(source="cgroup"), else the resident sets of each worker\'s processes in /proc summed '
            '(source="proc").',
            labels=["runtime", "source"],
        )
        cpu = CounterMetricFamily(
            "agentcore_worker_cpu_seconds",
            "CPU time used by the runtime's workers, as seen at each scrape: from each session's cgroup "
            '(source="cgroup"), else user and system time of its processes in /proc (source="proc").',
            labels=["runtime", "source"],
        )
        return live, memory, cpu


__all__ = ["BUSY", "IDLE", "Census", "SessionCollector", "take_census"]
