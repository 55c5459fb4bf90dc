"""What tracing costs, side by side in one run (docs/observability.md).

Server: three `agentcore server run` processes host the hello agent, with `--tracing off`, with
tracing on but the agent not exporting (its environment says `OTEL_TRACES_EXPORTER=none`), and with
tracing on and the agent's SDK exporting its invocation spans to the server. Per round and server,
the same session's worker is invoked directly on its unix socket and through InvokeAgentRuntime,
pairs interleaved (`server_bench.measure_overhead`); the table shows medians over rounds.

SDK: the hello agent under uvicorn, as `make bench` runs it, with OpenTelemetry not importable
(hidden by a `sitecustomize`), importable but with no exporter configured, and exporting over
OTLP/HTTP to a loopback collector (a stand-in for the server's receiver that answers 200 at once);
wrk's requests/s, rounds interleaved.

Servers run on core 0, clients on core 1: on a shared machine, read the ratios, not the absolutes.

    .venv/bin/python benchmarks/tracing.py [--rounds 3] [--pairs 300] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load
from runtime_server import running_server
from server_bench import measure_overhead
from servers import AGENTS, SERVER_CORE, UVICORN_SETTINGS, _pings, free_port

_HIDE_OPENTELEMETRY = """
import sys


class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(name)
        return None


sys.meta_path.insert(0, _Hide())
"""

_NO_EXPORT = (
    'import os\nos.environ["OTEL_TRACES_EXPORTER"] = "none"  # tracing on, this agent exports nothing\n'
)


# Server ------------------------------------------------------------------------------------

SERVER_MODES = {
    "off": (["--tracing", "off"], False),
    "on, agent not exporting": ([], False),
    "on, agent exporting to the server": ([], True),
}


def server_overheads(rounds: int, pairs: int) -> dict[str, dict[str, float]]:
    hello = (AGENTS / "hello_sync.py").read_text()
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as stack:
        quiet = Path(scratch) / "hello_quiet.py"
        quiet.write_text(_NO_EXPORT + hello)
        deployed = {}
        for mode, (flags, exporting) in SERVER_MODES.items():
            server = stack.enter_context(running_server(warm_pool=0, options=flags))
            agent = AGENTS / "hello_sync.py" if exporting else quiet
            runtime_id, arn = server.deploy(agent, "tracing_bench")
            deployed[mode] = (server, runtime_id, arn)
        samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in SERVER_MODES}
        for number in range(rounds):
            order = list(SERVER_MODES)
            order = order[number % len(order) :] + order[: number % len(order)]
            for mode in order:
                server, runtime_id, arn = deployed[mode]
                samples[mode].append(measure_overhead(server, runtime_id, arn, pairs))
                print(
                    f"  round {number + 1}, tracing {mode}: {samples[mode][-1]['server_p50_ms']:.3f} ms p50",
                    flush=True,
                )
    keys = ("server_p50_ms", "server_p99_ms", "direct_p50_ms", "overhead_p50_ms", "overhead_p99_ms")
    return {
        mode: {key: statistics.median(s[key] for s in runs) for key in keys} for mode, runs in samples.items()
    }


# SDK ---------------------------------------------------------------------------------------

SDK_MODES = ("OpenTelemetry not importable", "importable, no exporter", "exporting to a loopback collector")


@contextlib.contextmanager
def collector() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def sdk_server(environment: dict[str, str]) -> Iterator[int]:
    port = free_port()
    command = ["taskset", "-c", SERVER_CORE, sys.executable, "-m", "uvicorn", "hello_sync:app",
               "--port", str(port), *UVICORN_SETTINGS]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=AGENTS, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while not _pings(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the SDK server did not start")
            time.sleep(0.01)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def sdk_throughput(rounds: int, seconds: float) -> dict[str, float]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    with tempfile.TemporaryDirectory() as hidden, collector() as sink, contextlib.ExitStack() as stack:
        (Path(hidden) / "sitecustomize.py").write_text(_HIDE_OPENTELEMETRY)
        environments = {
            SDK_MODES[0]: {**base, "PYTHONPATH": f"{hidden}{os.pathsep}{AGENTS}"},
            SDK_MODES[1]: {**base, "PYTHONPATH": str(AGENTS)},
            SDK_MODES[2]: {**base, "PYTHONPATH": str(AGENTS), "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
                           "OTEL_SERVICE_NAME": "bench"},
        }  # fmt: skip
        ports = {mode: stack.enter_context(sdk_server(env)) for mode, env in environments.items()}
        runs: dict[str, list[float]] = {mode: [] for mode in SDK_MODES}
        for number in range(rounds):
            for mode in SDK_MODES[number % 3 :] + SDK_MODES[: number % 3]:
                runs[mode].append(load.requests_per_second(f"http://127.0.0.1:{ports[mode]}", seconds))
                print(f"  round {number + 1}, SDK {mode}: {runs[mode][-1]:.0f} req/s", flush=True)
    return {mode: statistics.median(values) for mode, values in runs.items()}


def main() -> None:
    options = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    options.add_argument("--rounds", type=int, default=3)
    options.add_argument("--pairs", type=int, default=300, help="invocation pairs per server and round")
    options.add_argument("--seconds", type=float, default=5.0, help="wrk seconds per SDK run")
    args = options.parse_args()
    print("server: invocation through the server vs the worker directly (ms, medians of rounds)", flush=True)
    server = server_overheads(args.rounds, args.pairs)
    print("SDK: hello requests/s under wrk (medians of rounds)", flush=True)
    sdk = sdk_throughput(args.rounds, args.seconds)
    print()
    head = f"{'server tracing':<36} {'p50':>8} {'p99':>8} {'direct p50':>11}"
    print(f"{head} {'overhead p50':>13} {'overhead p99':>13}")
    for mode, row in server.items():
        times = f"{row['server_p50_ms']:>8.3f} {row['server_p99_ms']:>8.3f} {row['direct_p50_ms']:>11.3f}"
        print(f"{mode:<36} {times} {row['overhead_p50_ms']:>13.3f} {row['overhead_p99_ms']:>13.3f}")
    print()
    hidden = sdk[SDK_MODES[0]]
    print(f"{'SDK':<36} {'req/s':>8} {'vs hidden':>10}")
    for mode, rate in sdk.items():
        print(f"{mode:<36} {rate:>8.0f} {rate / hidden:>10.2f}")
    print(json.dumps({"server": server, "sdk": sdk}))


if __name__ == "__main__":
    main()
