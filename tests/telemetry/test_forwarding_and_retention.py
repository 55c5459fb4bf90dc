"""`--otlp-endpoint` forwards the server's spans and received ones to a collector (here a real
OTLP/HTTP receiver on loopback); `--trace-max-spans` and `--trace-retention` bound what is kept."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

import pytest

from open_agentcore.telemetry.otlp import to_json
from tests.conftest import free_port, wait_until
from tests.telemetry.conftest import Collector, post_spans, traced_server, traces
from tests.telemetry.test_receiver import json_export


def forwarded_span_ids(collector: Collector) -> dict[str, dict[str, str]]:
    """Every span the collector received, by span id, with its resource's attributes."""
    found: dict[str, dict[str, str]] = {}
    with collector.lock:
        posts = list(collector.posts)
    for path, headers, body in posts:
        assert path == "/v1/traces" and headers["content-type"] == "application/x-protobuf"
        for resource_spans in to_json(body)["resourceSpans"]:
            resource = {
                a["key"]: a["value"].get("stringValue", "") for a in resource_spans["resource"]["attributes"]
            }
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    found[span["spanId"]] = {**resource, "name": span["name"], "traceId": span["traceId"]}
    return found


def test_received_and_own_spans_reach_the_collector(short_data_dir: Path, collector: Collector) -> None:
    with traced_server(short_data_dir, otlp_endpoint=collector.url) as server:
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        assert post_spans(server, json_export(trace_id, span_id), "application/json").status_code == 200
        assert (
            server.signed("POST", "/runtimes/", b"{}").status_code == 200
        )  # ListAgentRuntimes: a server span

        forwarded = wait_until(lambda: (found := forwarded_span_ids(collector)) and span_id in found and any(
            s["name"] == "ListAgentRuntimes" for s in found.values()) and found, timeout=30)  # fmt: skip
        assert forwarded[span_id]["service.name"] == "my-agent" and forwarded[span_id]["traceId"] == trace_id
        own = next(s for s in forwarded.values() if s["name"] == "ListAgentRuntimes")
        assert own["service.name"] == "open-agentcore"


def test_a_collector_that_is_down_is_logged_once(
    short_data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="open_agentcore.telemetry")
    with traced_server(short_data_dir, otlp_endpoint=f"http://127.0.0.1:{free_port()}") as server:
        sent = []
        for _ in range(3):
            trace_id = secrets.token_hex(16)
            sent.append(trace_id)
            assert (
                post_spans(
                    server, json_export(trace_id, secrets.token_hex(8)), "application/json"
                ).status_code
                == 200
            )
            # Each export is written (and forwarded) before the next is sent: three batches.
            wait_until(
                lambda trace_id=trace_id: any(t["traceId"] == trace_id for t in traces(server)), timeout=30
            )
    failures = [r for r in caplog.records if "Forwarding spans" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]


def test_the_span_count_is_bounded_oldest_first(short_data_dir: Path) -> None:
    with traced_server(short_data_dir, trace_max_spans=3) as server:
        posted = []
        for _ in range(6):
            trace_id = secrets.token_hex(16)
            posted.append(trace_id)
            assert (
                post_spans(
                    server, json_export(trace_id, secrets.token_hex(8)), "application/json"
                ).status_code
                == 200
            )

        def pruned() -> set[str] | None:
            kept = {t["traceId"] for t in traces(server)}
            return kept if kept == set(posted[-3:]) else None

        assert wait_until(pruned, timeout=30)


def test_spans_past_the_retention_age_are_dropped(short_data_dir: Path) -> None:
    with traced_server(short_data_dir, trace_retention=0.5) as server:
        trace_id = secrets.token_hex(16)
        assert (
            post_spans(server, json_export(trace_id, secrets.token_hex(8)), "application/json").status_code
            == 200
        )
        assert wait_until(lambda: any(t["traceId"] == trace_id for t in traces(server)), timeout=30)
        assert wait_until(lambda: not any(t["traceId"] == trace_id for t in traces(server)), timeout=30)
