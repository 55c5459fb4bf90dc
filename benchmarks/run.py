"""`make bench`: our SDK against the reference SDK and bare Starlette, side by side, in one run.
Then issue 13's table (issue13.py: the runtime server's costs, SSE fairness and throughput, this
tree against a baseline tree), the floor under its overhead and throughput rows (floor_relay.py:
a bare relay in Python, nothing but parsing heads and piping bytes), new sessions fork and fresh
(session_start.py, as root), issue 10's scale-out figures (ray_backend.py: the Ray backend beside
the process backend; replicas.py: route lookups at 10,000 session rows, one replica against two),
and the CLI's start-up (cli_start.py) against the same baseline.

Servers run on core 0 and load generators on core 1, with the same uvicorn settings for every
contender; rounds are interleaved (ours, reference, bare, ours, ...) and results are medians with
per-round ratios. Writes a markdown table to stdout and JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cli_start
import issue13
import load
import session_start
from baseline import BASELINE_COMMIT, checkout_of
from environments import Environment, describe, ours, reference
from report import Metric, render
from servers import UVICORN_SETTINGS, serving

RESULTS = Path(__file__).resolve().parent / "results"


def measure_round(
    contenders: dict[str, Environment], settings: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """One interleaved round of every metric for every contender."""
    seconds = settings.duration
    out: dict[str, dict[str, float]] = {name: {} for name in contenders}
    for name, environment in contenders.items():
        target = "bare:app" if name == "bare" else "hello_sync:app"
        bare_env = contenders["ours"] if name == "bare" else environment
        with serving(bare_env, target) as server:
            out[name]["startup_s"] = server.startup_seconds
            load._post(server.port, {"name": "warm"})
            out[name]["idle_rss_mib"] = server.rss_kib() / 1024
            out[name]["sync_rps"] = load.requests_per_second(server.url, seconds)
        if name == "bare":
            continue
        with serving(environment, "hello_async:app") as server:
            out[name]["async_rps"] = load.requests_per_second(server.url, seconds)
        with serving(environment, "stream_async:app") as server:
            out[name]["sse_fps"] = load.stream_frames_per_second(
                server.port, 16, settings.frames, settings.sse_rounds
            )
        with serving(environment, "blocking:sync_app") as server:
            out[name]["ping_p99_sync_ms"] = load.ping_p99_while_blocked(server.port, 4, 2.0, settings.samples)
        with serving(environment, "blocking:app") as server:
            out[name]["ping_p99_async_ms"] = load.ping_p99_while_blocked(
                server.port, 2, 2.0, settings.samples
            )
            out[name]["two_blocking_1s_wall_s"] = load.concurrent_block_wall_time(server.port, 2, 1.0)
    return out


def _ratio(rounds: list[dict[str, dict[str, float]]], key: str, a: str, b: str) -> list[float]:
    return [r[a][key] / r[b][key] for r in rounds if key in r[a] and key in r[b] and r[b][key]]


def metrics(rounds: list[dict[str, dict[str, float]]]) -> list[Metric]:
    """Medians and ratio medians, with each target checked."""

    def median(name: str, key: str) -> float | None:
        values = [r[name][key] for r in rounds if key in r.get(name, {})]
        return statistics.median(values) if values else None

    def row(
        label: str,
        key: str,
        target: str,
        check: Callable[[float, float | None, float | None], bool],
        bare: bool = False,
    ) -> Metric:
        ratio = _ratio(rounds, key, "ours", "reference")
        ratio_median = statistics.median(ratio) if ratio else None
        ours_value = median("ours", key)
        bare_ratio = statistics.median(_ratio(rounds, key, "ours", "bare")) if bare else None
        return Metric(
            label=label,
            ours=ours_value,
            reference=median("reference", key),
            bare=median("bare", key) if bare else None,
            ratio=ratio_median,
            ratio_rounds=ratio,
            bare_ratio=bare_ratio,
            target=target,
            passed=check(ours_value or 0.0, ratio_median, bare_ratio),
        )

    return [
        row(
            "hello sync req/s",
            "sync_rps",
            "≥1.5× ref, ≥0.8× bare",
            lambda v, r, b: (r or 0) >= 1.5 and (b or 0) >= 0.8,
            bare=True,
        ),
        row("async handler req/s", "async_rps", "≥2.2× ref", lambda v, r, b: (r or 0) >= 2.2),
        row("SSE frames/s, 16 streams", "sse_fps", "≥4× ref", lambda v, r, b: (r or 0) >= 4.0),
        row("start-up to /ping (s)", "startup_s", "≤0.6× ref", lambda v, r, b: (r or 9) <= 0.6, bare=True),
        row("idle RSS (MiB)", "idle_rss_mib", "≤0.8× ref", lambda v, r, b: (r or 9) <= 0.8, bare=True),
        row("/ping p99, 4 sync handlers sleeping (ms)", "ping_p99_sync_ms", "<20 ms", lambda v, r, b: v < 20),
        row(
            "/ping p99, 2 async handlers blocking (ms)", "ping_p99_async_ms", "<20 ms", lambda v, r, b: v < 20
        ),
        row(
            "2 async handlers blocking 1 s: wall (s)",
            "two_blocking_1s_wall_s",
            "≈1 s",
            lambda v, r, b: v < 1.5,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument("--quick", action="store_true", help="one short round, for a smoke check")
    parser.add_argument(
        "--baseline",
        help=f"the checkout (with its own .venv) to compare with; default: commit {BASELINE_COMMIT[:7]}, "
        "checked out once into benchmarks/.venvs/",
    )
    settings = parser.parse_args()
    settings.frames, settings.sse_rounds, settings.samples = 2000, 3, 200
    if settings.quick:
        settings.rounds, settings.duration, settings.frames, settings.sse_rounds, settings.samples = (
            1,
            2.0,
            1000,
            1,
            100,
        )
    os.sched_setaffinity(0, {int(load.LOAD_CORE)})  # this process drives load: keep it off the servers' core
    load.ensure_wrk()
    contenders = {"ours": ours(), "reference": reference(), "bare": ours()}
    print(f"ours: {describe(contenders['ours'])}\nreference: {describe(contenders['reference'])}")
    print(
        f"uvicorn settings for every server: {' '.join(UVICORN_SETTINGS)}; servers on core 0, load on core 1"
    )
    rounds = []
    for number in range(1, settings.rounds + 1):
        started = time.perf_counter()
        rounds.append(measure_round(contenders, settings))
        print(f"round {number}/{settings.rounds} done in {time.perf_counter() - started:.0f}s", flush=True)
    table = render(metrics(rounds), settings.rounds)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"sdk-{stamp}.md").write_text(table)
    (RESULTS / f"sdk-{stamp}.json").write_text(json.dumps(rounds, indent=2))
    issue13.run(settings.baseline, issue13.Settings.of(None, settings.quick))
    floor(settings.quick)
    scale_out(settings.quick)
    baseline = ["--baseline", str(checkout_of(settings.baseline))]
    if os.geteuid() == 0:  # forked sessions are sandboxed only when the server runs as root
        try:
            session_start.main([*baseline, *(["--rounds", "3", "--sessions", "8"] if settings.quick else [])])
        except RuntimeError as error:  # e.g. a baseline from before --session-start
            print(f"session_start.py failed against {baseline[1]}: {str(error).splitlines()[-1]}")
            print("(it needs a baseline that has --session-start: make bench BASELINE=DIR)")
    else:
        print("session_start.py skipped: sandboxed forked sessions need a server running as root")
    return cli_start.main([*baseline, *(["--rounds", "5"] if settings.quick else [])])


def floor(quick: bool) -> None:
    """Beside issue 13's overhead and throughput rows, what a bare relay in Python costs."""
    runs = {
        "floor_relay.py": ["--rounds", "1", "--pairs", "500"] if quick else [],
        "throughput.py": ["--floor", "--sessions", "64", "--rounds", "1", *(["--quick"] if quick else [])],
    }
    for script, options in runs.items():
        print(f"\n## {script} {' '.join(options)}".rstrip(), flush=True)
        done = subprocess.run([sys.executable, str(Path(__file__).parent / script), *options], check=False)
        if done.returncode != 0:
            print(f"({script} failed with exit code {done.returncode}; its figures are missing)")


def scale_out(quick: bool) -> None:
    """Issue 10's figures: the Ray backend beside the process backend, and replicas on one store."""
    few = ["--rows", "2000", "--lookups", "300", "--invocations", "50", "--seconds", "2", "--rounds", "1"]
    runs = {
        "ray_backend.py": ["--samples", "3", "--invocations", "50"] if quick else [],
        "replicas.py": few if quick else [],
    }
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))  # they place their servers and load themselves
    try:
        for script, options in runs.items():
            print(f"\n## {script} {' '.join(options)}".rstrip(), flush=True)
            command = [sys.executable, str(Path(__file__).parent / script), *options]
            done = subprocess.run(command, check=False)
            if done.returncode != 0:
                print(f"({script} failed with exit code {done.returncode}; its figures are missing)")
    finally:
        os.sched_setaffinity(0, pinned)


if __name__ == "__main__":
    raise SystemExit(main())
