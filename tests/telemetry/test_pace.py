"""Span work in the background lets go of the interpreter between spans, so a thread that wants it
(the event loop, with a request) runs in the middle of that work instead of after all of it.

Each test makes the interpreter's forced switch rare (a 2 s switch interval) and watches, from a
second thread that keeps asking for the interpreter, whether it ever ran while the span work was
half done. Without pacing it runs only before and after: the work takes far less than 2 s.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from open_agentcore.store import open_store
from open_agentcore.store.traces import SpanRecord
from open_agentcore.telemetry import SpanSink, TracingConfig
from open_agentcore.telemetry.otlp import JSON, decode
from open_agentcore.telemetry.pace import Pace

SPANS = 3000


@pytest.fixture
def rare_switches() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(2.0)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def progress_seen_while(work: Callable[[], None], progress: Callable[[], int], total: int) -> set[int]:
    """Run `work` on a thread; from this one, note `progress()` each time this thread gets the
    interpreter back from a short sleep, until the work is done. The values seen, ends excluded."""
    seen: set[int] = set()
    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.0001)  # lets go of the interpreter, then asks for it back
        seen.add(progress())
    thread.join(60)
    assert not thread.is_alive()
    return seen - {0, total}


def export(spans: int) -> bytes:
    one = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "name": "step",
        "kind": 1,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000000100000",
        "attributes": [{"key": "n", "value": {"intValue": "7"}}],
    }
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "agent"}}]},
                "scopeSpans": [{"spans": [{**one, "spanId": f"{n + 1:016x}"} for n in range(spans)]}],
            }
        ]
    }
    return json.dumps(document).encode()


class CountingPace(Pace):
    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        super().step()


def test_reading_a_workers_export_lets_another_thread_run_between_spans(rare_switches: None) -> None:
    body = export(SPANS)
    pace = CountingPace()
    records: list[SpanRecord] = []
    seen = progress_seen_while(lambda: records.extend(decode(body, JSON, pace)), lambda: pace.steps, SPANS)
    assert len(records) == SPANS and pace.steps == SPANS
    assert seen, "the other thread never ran while the export was being read"


def test_the_span_sink_lets_another_thread_run_while_it_converts_a_batch(
    rare_switches: None, tmp_path: Path
) -> None:
    converted = 0

    def convert(item: object) -> SpanRecord:
        nonlocal converted
        converted += 1
        assert isinstance(item, int)
        # As costly as converting a server span (tens of µs): a batch is many slices long, so the
        # sink's pauses cannot all fall between batches.
        sum(range(1000))
        return SpanRecord(
            trace_id="0af7651916cd43dd8448eb211c80319c", span_id=f"{item + 1:016x}", parent_span_id="",
            name="step", kind="INTERNAL", service="agent", start_ns=1, end_ns=2,
            attributes={"n": item, "text": "x" * 200},
        )  # fmt: skip

    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    sink_config = TracingConfig()
    sink = SpanSink(sink_config, convert)
    for n in range(SPANS):
        sink.submit(n)

    def drain() -> None:
        sink.start(store)
        assert sink.flush(timeout=50)

    try:
        seen = progress_seen_while(drain, lambda: converted, SPANS)
    finally:
        sink.close()
        store.close()
    assert converted == SPANS
    # The store lets go of the interpreter while it writes a batch anyway: what pacing adds is
    # letting go in the middle of converting one.
    mid_batch = {count for count in seen if count % sink_config.batch_size}
    assert mid_batch, f"the other thread ran only between batches ({sorted(seen)[:10]}...)"
