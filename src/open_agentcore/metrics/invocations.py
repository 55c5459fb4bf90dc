"""Invocation counts and latencies, kept as plain numbers while calls are served and handed to
prometheus_client only when `/metrics` is scraped.

prometheus_client's `Counter.inc` and `Histogram.observe` take a lock each (a histogram's observe
two increments: its sum and its bucket), which every call paid seven times over. Here a call adds
to a few list slots and floats on the event loop, the only thread that counts invocations; a
scrape copies them on the loop (`InvocationCollector.freeze`) and renders that copy off the loop,
so a rendering never sees a half-counted call. Names, labels, buckets and `_created` samples are
what the library's own `Counter` and `Histogram` expose.
"""

from __future__ import annotations

import enum
import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.metrics import _get_use_created
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

# Seconds. An invocation spans agents that answer in milliseconds and ones that stream for minutes.
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
# The server's own share of a call is meant to stay under a millisecond or two.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


class Outcome(str, enum.Enum):
    """How an invocation ended, as `agentcore_invocations_total` labels it."""

    SUCCESS = "success"  # 2xx, answered to its end
    CLIENT_ERROR = "client_error"  # refused for what the call is: 4xx other than those below
    THROTTLED = "throttled"  # 429, the rate limit
    AGENT_ERROR = "agent_error"  # 424: the agent answered non-2xx, crashed, or could not start
    CANCELLED = "cancelled"  # cancelled before its answer began, or the client left before the end
    CUT = "cut"  # the answer began and broke off (the worker died mid-stream)
    SERVER_ERROR = "server_error"  # 5xx


class Distribution:
    """A histogram's state: observations per bucket (not cumulative; the last is past every
    bound) and their sum. Not locked: only the event loop observes."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count `value` in the first bucket whose bound is at least `value` (Prometheus's `le`)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def copy(self) -> Distribution:
        """The distribution as it is now."""
        copied = Distribution(self.bounds)
        copied.counts = self.counts.copy()
        copied.total = self.total
        return copied

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative `(le, count)` pairs, `+Inf` last, as `HistogramMetricFamily` takes them."""
        pairs: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            pairs.append((_bucket_label(bound), running))
        return pairs


def _bucket_label(bound: float) -> str:
    # The `le` text prometheus_client's own histograms write (`1.0`, `+Inf`).
    label: str = floatToGoString(bound)  # type: ignore[no-untyped-call]  # untyped in the library
    return label


class InvocationSeries:
    """One runtime's invocation series: calls by outcome, and the three latencies of calls that
    reached a worker. Every outcome is exposed (at 0) from the runtime's first call on."""

    __slots__ = ("created", "duration", "first_byte", "outcomes", "overhead")

    def __init__(self, created: float) -> None:
        self.created = created
        self.outcomes = dict.fromkeys(Outcome, 0)
        self.duration = Distribution(CALL_BUCKETS)
        self.first_byte = Distribution(CALL_BUCKETS)
        self.overhead = Distribution(OVERHEAD_BUCKETS)

    def counted(self, outcome: Outcome) -> None:
        """One more call that ended as `outcome`."""
        self.outcomes[outcome] += 1

    def copy(self) -> InvocationSeries:
        """The series as it is now."""
        copied = InvocationSeries(self.created)
        copied.outcomes = self.outcomes.copy()
        copied.duration, copied.first_byte = self.duration.copy(), self.first_byte.copy()
        copied.overhead = self.overhead.copy()
        return copied


_LATENCIES = (
    (
        "agentcore_invocation_duration_seconds",
        "Calls that reached a worker: from the request's arrival to the answer's last byte.",
        "duration",
    ),
    (
        "agentcore_invocation_first_byte_seconds",
        "Calls that reached a worker: from the request's arrival to the answer's status line.",
        "first_byte",
    ),
    (
        "agentcore_invocation_server_overhead_seconds",
        "Calls that reached a worker: time to first byte minus getting the session's worker "
        "(starting one for a new session) and minus the worker's own time to its response head.",
        "overhead",
    ),
)


class InvocationCollector(Collector):
    """Renders the invocation series as the four metrics in docs/metrics.md.

    `series(runtime_id)` is what the hot path counts into; `freeze()` (on the event loop) takes the
    copy the next `collect()` renders.
    """

    def __init__(self) -> None:
        self._series: dict[str, InvocationSeries] = {}
        self._frozen: dict[str, InvocationSeries] = {}

    def series(self, runtime_id: str) -> InvocationSeries:
        """The series labelled with `runtime_id` (a bounded value), made on its first use."""
        found = self._series.get(runtime_id)
        if found is None:
            found = self._series[runtime_id] = InvocationSeries(time.time())
        return found

    def freeze(self) -> None:
        """Copy every series for the next rendering; call it where the series are counted."""
        self._frozen = {runtime_id: series.copy() for runtime_id, series in self._series.items()}

    def describe(self) -> Iterator[Metric]:
        yield from self._families({})

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self._frozen)

    def _families(self, frozen: dict[str, InvocationSeries]) -> Iterator[Metric]:
        created = _get_use_created()
        calls = CounterMetricFamily(
            "agentcore_invocations", "InvokeAgentRuntime calls by runtime and outcome.",
            labels=["runtime", "outcome"],
        )  # fmt: skip
        for runtime_id, series in frozen.items():
            for outcome, count in series.outcomes.items():
                calls.add_metric([runtime_id, outcome.value], count, series.created if created else None)
        yield calls
        for name, documentation, attribute in _LATENCIES:
            family = HistogramMetricFamily(name, documentation, labels=["runtime"])
            for runtime_id, series in frozen.items():
                distribution: Distribution = getattr(series, attribute)
                family.add_metric([runtime_id], distribution.buckets(), distribution.total)
                if created:
                    family.samples.append(Sample(f"{name}_created", {"runtime": runtime_id}, series.created))
            yield family


__all__ = [
    "CALL_BUCKETS",
    "OVERHEAD_BUCKETS",
    "Distribution",
    "InvocationCollector",
    "InvocationSeries",
    "Outcome",
]
