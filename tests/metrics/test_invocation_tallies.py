"""The invocation series kept as plain numbers (`metrics/invocations.py`) render exactly what
prometheus_client's own `Counter` and `Histogram` would have exposed for the same calls."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.parser import text_string_to_metric_families

from open_agentcore.metrics import Outcome, ServerMetrics
from open_agentcore.metrics.invocations import CALL_BUCKETS, OVERHEAD_BUCKETS, InvocationCollector

Call = tuple[str, Outcome, float, float, float]
RUNTIMES = ("rt-one-AAAAAAAAAA", "rt-two-BBBBBBBBBB", "unknown")
# Exactly on bucket bounds, between them, past the last, zero: where an off-by-one would show.
SECONDS = st.one_of(
    st.sampled_from((0.0, *CALL_BUCKETS, *OVERHEAD_BUCKETS, 1e6)),
    st.floats(min_value=0.0, max_value=2000.0, allow_nan=False),
)
CALLS = st.lists(
    st.tuples(st.sampled_from(RUNTIMES), st.sampled_from(list(Outcome)), SECONDS, SECONDS, SECONDS)
)


def _library_registry(calls: list[Call]) -> CollectorRegistry:
    """What the server registered before: the library's own metric classes, observed per call."""
    registry = CollectorRegistry()
    counter = Counter("agentcore_invocations", "c", ["runtime", "outcome"], registry=registry)
    duration = Histogram("agentcore_invocation_duration_seconds", "d", ["runtime"], buckets=CALL_BUCKETS,
                         registry=registry)  # fmt: skip
    first_byte = Histogram("agentcore_invocation_first_byte_seconds", "f", ["runtime"], buckets=CALL_BUCKETS,
                           registry=registry)  # fmt: skip
    overhead = Histogram("agentcore_invocation_server_overhead_seconds", "o", ["runtime"],
                         buckets=OVERHEAD_BUCKETS, registry=registry)  # fmt: skip
    for runtime_id, *_ in calls:  # a runtime's series all exist from its first call
        for each in Outcome:
            counter.labels(runtime_id, each.value)
        duration.labels(runtime_id), first_byte.labels(runtime_id), overhead.labels(runtime_id)
    for runtime_id, outcome, total, first, own in calls:
        counter.labels(runtime_id, outcome.value).inc()
        duration.labels(runtime_id).observe(total)
        first_byte.labels(runtime_id).observe(first)
        overhead.labels(runtime_id).observe(own)
    return registry


def _tallied_registry(calls: list[Call]) -> CollectorRegistry:
    registry = CollectorRegistry()
    collector = InvocationCollector()
    registry.register(collector)
    for runtime_id, outcome, total, first, own in calls:
        series = collector.series(runtime_id)
        series.counted(outcome)
        series.duration.observe(total)
        series.first_byte.observe(first)
        series.overhead.observe(own)
    collector.freeze()
    return registry


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # Creation times differ between any two registries: their presence is compared, not their value.
            value = 0.0 if sample.name.endswith("_created") else sample.value
            found[(sample.name, frozenset(sample.labels.items()))] = value
    return found


@settings(max_examples=200, deadline=None)
@given(CALLS)
def test_every_sample_equals_what_the_library_metrics_expose_for_the_same_calls(calls: list[Call]) -> None:
    ours = _samples(generate_latest(_tallied_registry(calls)).decode())
    theirs = _samples(generate_latest(_library_registry(calls)).decode())
    assert ours == theirs


def test_the_exposition_text_is_the_library_metrics_text_but_for_help_and_creation_times() -> None:
    calls: list[Call] = [
        ("rt-one-AAAAAAAAAA", Outcome.SUCCESS, 0.005, 0.004, 0.0003),
        ("rt-one-AAAAAAAAAA", Outcome.AGENT_ERROR, 7.5, 0.02, 0.0001),
        ("rt-two-BBBBBBBBBB", Outcome.CUT, 1000.0, 0.5, 2.0),
    ]

    def comparable(text: str) -> list[str]:
        lines = [line for line in text.splitlines() if not line.startswith("# HELP")]
        return [line.rsplit(" ", 1)[0] if "_created" in line else line for line in lines]

    for render in (generate_latest, openmetrics_latest):
        assert comparable(render(_tallied_registry(calls)).decode()) == comparable(
            render(_library_registry(calls)).decode()
        )


def test_a_scrape_shows_calls_counted_up_to_its_start_and_not_those_after() -> None:
    collector = InvocationCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    series = collector.series("rt-one-AAAAAAAAAA")
    series.counted(Outcome.SUCCESS)
    series.duration.observe(0.2)
    collector.freeze()
    series.counted(Outcome.SUCCESS)  # counted while the frozen copy renders off the loop
    series.duration.observe(0.3)
    found = _samples(generate_latest(registry).decode())
    labels = frozenset({("runtime", "rt-one-AAAAAAAAAA"), ("outcome", "success")})
    assert found[("agentcore_invocations_total", labels)] == 1.0
    assert (
        found[("agentcore_invocation_duration_seconds_sum", frozenset({("runtime", "rt-one-AAAAAAAAAA")}))]
        == 0.2
    )


def test_the_server_metrics_scrape_renders_what_was_counted_through_its_series() -> None:
    metrics = ServerMetrics()
    series = metrics.invocation_series("rt-one-AAAAAAAAAA")
    for _ in range(3):
        series.counted(Outcome.SUCCESS)
        series.overhead.observe(0.0004)
    text, _ = asyncio.run(metrics.scrape(None))
    found = _samples(text.decode())
    runtime = frozenset({("runtime", "rt-one-AAAAAAAAAA")})
    assert found[("agentcore_invocations_total", runtime | {("outcome", "success")})] == 3.0
    assert found[("agentcore_invocations_total", runtime | {("outcome", "cut")})] == 0.0
    assert found[("agentcore_invocation_server_overhead_seconds_bucket", runtime | {("le", "0.0005")})] == 3.0
    assert (
        found[("agentcore_invocation_server_overhead_seconds_bucket", runtime | {("le", "0.00025")})] == 0.0
    )
    assert found[("agentcore_invocation_server_overhead_seconds_count", runtime)] == 3.0
