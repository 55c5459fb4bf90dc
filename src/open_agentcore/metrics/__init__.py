"""Prometheus metrics of a runtime server: its registry, what is counted as the server works, and
what is read from the session table and the workers at each scrape."""

from .census import Census, SessionCollector, take_census
from .registry import UNKNOWN_RUNTIME, Outcome, ServerMetrics
from .workers import CGROUP, PROC, WorkerUsage, worker_usage

__all__ = [
    "CGROUP",
    "PROC",
    "UNKNOWN_RUNTIME",
    "Census",
    "Outcome",
    "ServerMetrics",
    "SessionCollector",
    "WorkerUsage",
    "take_census",
    "worker_usage",
]
