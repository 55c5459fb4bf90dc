"""The metrics of one runtime server: its own registry, what the server counts as it works, and
the exposition in Prometheus text or OpenMetrics format.

Each server has its own `CollectorRegistry`, never the library's global one: tests run many
servers in one process, and a server's scrape must show only its own traffic. Label values are
bounded: runtime ids of runtimes this server found in its store, fixed outcome and reason names;
never session or request ids.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder

from open_agentcore.sessions import LiveSession, SessionManager

from .census import SessionCollector, take_census
from .invocations import InvocationCollector, InvocationSeries, Outcome

UNKNOWN_RUNTIME = "unknown"  # a call refused before its runtime was found (never a runtime id)

_BUILD_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class ServerMetrics:
    """Everything one server exposes on `/metrics`. Observe through the attributes and methods;
    `watch` a session manager to have its sessions and workers read at each scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        # Counted on every call: plain numbers, rendered at scrape time (see `invocations.py`).
        self._invocations = InvocationCollector()
        registry.register(self._invocations)
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
        self._census = SessionCollector()
        registry.register(self._census)
        self._manager: SessionManager | None = None
        self._scraping = asyncio.Lock()

    def watch(self, manager: SessionManager) -> None:
        """Read this manager's sessions and workers at each scrape."""
        self._manager = manager

    def invocation_series(self, runtime_id: str) -> InvocationSeries:
        """The invocation series labelled with `runtime_id` (which must be a bounded value); count
        into it on the event loop only."""
        return self._invocations.series(runtime_id)

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
            self._invocations.freeze()
            exposition = await asyncio.to_thread(encoder, self.registry)
        return exposition, content_type


__all__ = ["UNKNOWN_RUNTIME", "InvocationSeries", "Outcome", "ServerMetrics"]
