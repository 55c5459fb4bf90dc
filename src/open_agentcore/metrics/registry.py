"""The metrics of one runtime server: its own registry, what the server counts as it works, and
the exposition in Prometheus text or OpenMetrics format.

Each server has its own `CollectorRegistry`, never the library's global one: tests run many
servers in one process, and a server's scrape must show only its own traffic. Label values are
bounded: runtime ids of runtimes this server found in its store, fixed outcome and reason names;
never session or request ids.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder

from open_agentcore.sessions import LiveSession, SessionManager

from .census import SessionCollector, take_census

UNKNOWN_RUNTIME = "unknown"  # a call refused before its runtime was found (never a runtime id)

# Seconds. An invocation spans agents that answer in milliseconds and ones that stream for minutes.
_CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
# The server's own share of a call is meant to stay under a millisecond or two.
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
_BUILD_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class Outcome(str, enum.Enum):
    """How an invocation ended, as `agentcore_invocations_total` labels it."""

    SUCCESS = "success"  # 2xx, answered to its end
    CLIENT_ERROR = "client_error"  # refused for what the call is: 4xx other than those below
    THROTTLED = "throttled"  # 429, the rate limit
    AGENT_ERROR = "agent_error"  # 424: the agent answered non-2xx, crashed, or could not start
    CANCELLED = "cancelled"  # cancelled before its answer began, or the client left before the end
    CUT = "cut"  # the answer began and broke off (the worker died mid-stream)
    SERVER_ERROR = "server_error"  # 5xx


@dataclass(frozen=True)
class InvocationSeries:
    """The series of one runtime's invocations, looked up once: `labels()` takes a lock and
    builds a key on every call, which the hot path need not pay."""

    outcomes: dict[Outcome, Any]  # Outcome -> the counter's child
    duration: Any
    first_byte: Any
    overhead: Any


class ServerMetrics:
    """Everything one server exposes on `/metrics`. Observe through the attributes and methods;
    `watch` a session manager to have its sessions and workers read at each scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.invocations = Counter(
            "agentcore_invocations", "InvokeAgentRuntime calls by runtime and outcome.",
            ["runtime", "outcome"], registry=registry,
        )  # fmt: skip
        self.invocation_seconds = Histogram(
            "agentcore_invocation_duration_seconds",
            "Calls that reached a worker: from the request's arrival to the answer's last byte.",
            ["runtime"], buckets=_CALL_BUCKETS, registry=registry,
        )  # fmt: skip
        self.first_byte_seconds = Histogram(
            "agentcore_invocation_first_byte_seconds",
            "Calls that reached a worker: from the request's arrival to the answer's status line.",
            ["runtime"], buckets=_CALL_BUCKETS, registry=registry,
        )  # fmt: skip
        self.overhead_seconds = Histogram(
            "agentcore_invocation_server_overhead_seconds",
            "Calls that reached a worker: time to first byte minus getting the session's worker "
            "(starting one for a new session) and minus the worker's own time to its response head.",
            ["runtime"], buckets=_OVERHEAD_BUCKETS, registry=registry,
        )  # fmt: skip
        self.session_starts = Counter(
            "agentcore_session_starts", "Sessions started: cold (a new worker) or warm (from the warm pool).",
            ["runtime", "start"], registry=registry,
        )  # fmt: skip
        self.builds = Counter(
            "agentcore_builds", "Version builds finished, by outcome (succeeded or failed).",
            ["runtime", "outcome"], registry=registry,
        )  # fmt: skip
        self.build_seconds = Histogram(
            "agentcore_build_duration_seconds", "How long version builds took (unpacking and environment).",
            ["outcome"], buckets=_BUILD_BUCKETS, registry=registry,
        )  # fmt: skip
        self.auth_failures = Counter(
            "agentcore_auth_failures", "Requests refused as unauthenticated or unauthorised, by reason.",
            ["reason"], registry=registry,
        )  # fmt: skip
        self.rate_limited = Counter(
            "agentcore_rate_limited_requests", "Requests refused by the per-caller rate limit (429).",
            ["operation"], registry=registry,
        )  # fmt: skip
        self._series: dict[str, InvocationSeries] = {}
        self._census = SessionCollector()
        registry.register(self._census)
        self._manager: SessionManager | None = None
        self._scraping = asyncio.Lock()

    def watch(self, manager: SessionManager) -> None:
        """Read this manager's sessions and workers at each scrape."""
        self._manager = manager

    def invocation_series(self, runtime_id: str) -> InvocationSeries:
        """The invocation series labelled with `runtime_id` (which must be a bounded value)."""
        series = self._series.get(runtime_id)
        if series is None:
            series = self._series[runtime_id] = InvocationSeries(
                {outcome: self.invocations.labels(runtime_id, outcome.value) for outcome in Outcome},
                self.invocation_seconds.labels(runtime_id),
                self.first_byte_seconds.labels(runtime_id),
                self.overhead_seconds.labels(runtime_id),
            )
        return series

    def session_started(self, live: LiveSession) -> None:
        """Count a session start (the session manager's "started" event)."""
        self.session_starts.labels(live.target.runtime_id, live.start).inc()

    def build_finished(self, runtime_id: str, succeeded: bool, seconds: float) -> None:
        """Count a finished build of a version of `runtime_id`."""
        outcome = "succeeded" if succeeded else "failed"
        self.builds.labels(runtime_id, outcome).inc()
        self.build_seconds.labels(outcome).observe(seconds)

    async def scrape(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition and its content type: OpenMetrics when `accept` asks for it, else the
        Prometheus text format. Worker usage is read from files: that happens off the event loop."""
        encoder, content_type = choose_encoder(accept or "")
        async with self._scraping:  # one census at a time: the collector keeps CPU totals between scrapes
            if self._manager is not None:
                self._census.census = take_census(self._manager)
            exposition = await asyncio.to_thread(encoder, self.registry)
        return exposition, content_type


__all__ = ["UNKNOWN_RUNTIME", "InvocationSeries", "Outcome", "ServerMetrics"]
