"""The runtime-server benchmark of this checkout against another one, side by side in one run.

    .venv/bin/python benchmarks/versus.py --baseline /path/to/other/checkout [--rounds 5] [--sessions 20]

The other checkout needs its own `.venv` (`make .venv/.installed-dev` there). Rounds alternate
(baseline, this, this, baseline, ...), each a one-round `server_bench.py` of that checkout with
its own code; the table gives medians over the rounds and this/baseline ratios. For a change's
before and after: `git worktree add /tmp/before <commit>` and point `--baseline` at it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent

METRICS = (
    ("server overhead p50 (ms)", lambda r: r["overhead_rounds"][0]["overhead_p50_ms"]),
    ("server overhead p99 (ms)", lambda r: r["overhead_rounds"][0]["overhead_p99_ms"]),
    ("through the server p50 (ms)", lambda r: r["overhead_rounds"][0]["server_p50_ms"]),
    # None from a tree whose server_bench.py has no untraced server (one without tracing at all).
    ("server overhead p50, --tracing off (ms)", lambda r: _untraced(r, "overhead_p50_ms")),
    ("server overhead p99, --tracing off (ms)", lambda r: _untraced(r, "overhead_p99_ms")),
    ("new session → first byte, warm p50 (ms)", lambda r: statistics.median(r["new_session"]["warm_ms"])),
    ("new session → first byte, cold p50 (ms)", lambda r: statistics.median(r["new_session"]["cold_ms"])),
    ("PSS per idle session (MiB)", lambda r: r["memory"]["per_session_kib"]["mean_pss"] / 1024),
    ("memory per idle session, all in (MiB)", lambda r: r["memory"]["total_per_session_kib"] / 1024),
)


def _untraced(result: dict[str, Any], key: str) -> float | None:
    rounds = result.get("overhead_untraced_rounds")
    return float(rounds[0][key]) if rounds else None


def one_round(checkout: Path, sessions: int, quick: bool = False) -> dict[str, Any]:
    """One `server_bench.py` round of `checkout`, with its own interpreter; its JSON result.

    `quick` runs that round with `server_bench.py --quick` (fewer samples, 4 idle sessions)."""
    results = checkout / "benchmarks" / "results"
    before = set(results.glob("server-*.json")) if results.exists() else set()
    command = [str(checkout / ".venv" / "bin" / "python"), str(checkout / "benchmarks" / "server_bench.py"),
               "--rounds", "1", "--sessions", str(sessions), *(["--quick"] if quick else [])]  # fmt: skip
    subprocess.run(command, cwd=checkout, check=True, stdout=subprocess.DEVNULL)
    (written,) = set(results.glob("server-*.json")) - before
    result: dict[str, Any] = json.loads(written.read_text())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout (with its .venv)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per checkout (default 5)")
    parser.add_argument("--sessions", type=int, default=20, help="idle sessions per round (default 20)")
    args = parser.parse_args()
    contenders = {"baseline": args.baseline.resolve(), "this": HERE}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    started = time.monotonic()
    for round_number in range(args.rounds):
        order = list(contenders) if round_number % 2 == 0 else list(reversed(contenders))
        for name in order:
            runs[name].append(one_round(contenders[name], args.sessions))
        print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"Runtime server, this checkout against {args.baseline} ({args.rounds} alternating rounds, "
          f"{args.sessions} idle sessions each; medians)\n")  # fmt: skip
    print("| metric | baseline | this | this / baseline | per round (baseline → this) |")
    print("|---|---:|---:|---:|---|")
    for label, read in METRICS:
        values = {name: [read(result) for result in runs[name]] for name in contenders}
        if any(value is None for figures in values.values() for value in figures):
            print(f"| {label} | not measured in both | | | |")
            continue
        base, this = statistics.median(values["baseline"]), statistics.median(values["this"])
        rounds = ", ".join(
            f"{b:.3g}→{t:.3g}" for b, t in zip(values["baseline"], values["this"], strict=True)
        )
        print(f"| {label} | {base:.3g} | {this:.3g} | {this / base:.2f}× | {rounds} |")
    print(f"\nsandboxes: baseline {runs['baseline'][0]['sandbox']}, this {runs['this'][0]['sandbox']}; "
          f"took {time.monotonic() - started:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
