"""What metrics cost on the invocation hot path: the server's overhead per call with metrics on
(the default, `--metrics-port` serving too) and with `--no-metrics`, side by side in one run.

Both servers host the same hello agent on core 0 and are measured in alternating rounds with
server_bench's interleaved direct-vs-server pairs; this process drives them from core 1. The
figure that matters is the ratio of the two servers' per-call overhead (through the server minus
straight to the worker), p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load
from runtime_server import running_server
from server_bench import AGENT, RESULTS, measure_overhead
from servers import free_port

_FIGURES = (
    "server_p50_ms",
    "server_p99_ms",
    "overhead_p50_ms",
    "overhead_p99_ms",
    "paired_difference_p50_ms",
)


def run(rounds: int, pairs: int) -> dict[str, Any]:
    """Rounds of interleaved pairs on each server in turn; both stopped (with their workers) after."""
    metrics_port = ["--metrics-port", str(free_port())]
    results: dict[str, Any] = {"on": [], "off": []}
    with (
        running_server(warm_pool=0, options=metrics_port) as on,
        running_server(warm_pool=0, options=["--no-metrics"]) as off,
    ):
        servers = {
            "on": (on, *on.deploy(AGENT, "hello_metrics")),
            "off": (off, *off.deploy(AGENT, "hello_plain")),
        }
        for number in range(rounds):
            order = ("on", "off") if number % 2 else ("off", "on")
            for name in order:
                server, runtime_id, arn = servers[name]
                results[name].append(measure_overhead(server, runtime_id, arn, pairs))
            print(f"metrics round {number + 1}/{rounds} done", flush=True)
    return results


def middleware_cost_us(calls: int) -> dict[str, float]:
    """CPU microseconds per call that metrics add in-process: the same minimal invocation (its
    classification, the route's three marks, a two-message answer) observed and recorded as the
    gateway does, and without it. CPU time of this process only, so other load on the machine
    barely moves it."""
    from open_agentcore.metrics import ServerMetrics
    from open_agentcore.server.operations import SCOPE_KEY
    from open_agentcore.server.request_metrics import EXCHANGE, Exchange, RequestMetrics, invocation_of
    from open_agentcore.server.routes import operation_table

    table = operation_table("us-east-1", "000000000000")
    path = b"/runtimes/hello-AAAAAAAAAA/invocations"

    async def route(scope: Any, receive: Any, send: Any) -> None:
        scope[SCOPE_KEY] = table.classify(scope)
        observed = invocation_of(scope, "hello-AAAAAAAAAA")
        observed.leasing()
        observed.answered(200)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"x")]})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def loop(app: Any) -> float:
        started = time.process_time()
        for _ in range(calls):
            scope = {"type": "http", "method": "POST", "path": path.decode(), "raw_path": path,
                     "query_string": b"", "headers": [], "state": {}}  # fmt: skip
            await app(scope, receive, send)
        return (time.process_time() - started) / calls * 1e6

    recorder = RequestMetrics(ServerMetrics())

    async def instrumented(scope: Any, receive: Any, send: Any) -> None:
        # What the gateway does for metrics: one exchange watching the answer, recorded at the end.
        exchange = scope["state"][EXCHANGE] = Exchange(time.perf_counter(), send, receive)
        try:
            await route(scope, exchange.receive, exchange.send)
        finally:
            recorder.record(scope, exchange)

    async def both() -> dict[str, float]:
        await loop(route), await loop(instrumented)  # warm both
        plain_us, metrics_us = await loop(route), await loop(instrumented)
        return {"plain_us": plain_us, "with_metrics_us": metrics_us, "added_us": metrics_us - plain_us}

    return asyncio.run(both())


def summary(results: dict[str, Any]) -> dict[str, float]:
    """Medians over rounds of each figure, per server, and the on/off ratios of the overheads."""
    figures: dict[str, float] = {}
    for name in ("on", "off"):
        for figure in _FIGURES:
            figures[f"{name}_{figure}"] = statistics.median(r[figure] for r in results[name])
    for figure in ("server_p50_ms", "overhead_p50_ms", "overhead_p99_ms", "paired_difference_p50_ms"):
        off = figures[f"off_{figure}"]
        figures[f"ratio_{figure}"] = figures[f"on_{figure}"] / off if off > 0 else float("nan")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6, help="rounds per server (default 6)")
    parser.add_argument("--pairs", type=int, default=400, help="direct/server pairs per round (default 400)")
    settings = parser.parse_args(argv)
    os.sched_setaffinity(0, {int(load.LOAD_CORE)})  # this process drives load: keep it off the servers' core
    figures = {f"inprocess_{name}": value for name, value in middleware_cost_us(50_000).items()}
    results = run(settings.rounds, settings.pairs)
    figures.update(summary(results))
    for name, figure in figures.items():
        print(f"{name:40} {figure:8.3f}")
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"metrics-{stamp}.json").write_text(
        json.dumps({"rounds": results, "summary": figures}, indent=2)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
