"""Issue 13's table (speed and density): every row for this tree and a baseline tree, in one run.

    .venv/bin/python benchmarks/issue13.py [--baseline DIR] [--rounds 3] [--quick] [--only GROUP ...]

The baseline is `--baseline DIR` (a checkout with its own `.venv`) or, without it, the fixed
commit in `baseline.py`, checked out once into `benchmarks/.venvs/` with its own `.venv`. Rounds
alternate the trees' order; every figure is the median over rounds (ratios: the median of the
per-round ratios). Rows and how each is measured:

- server overhead p50/p99, new session to first byte (cold, warm), PSS per idle session: one
  `server_bench.py` round of each tree with its own code and interpreter (`versus.one_round`);
- SSE first-chunk p99 and chunks/s: `agents/stream_sync.py` (a sync generator) served by each
  tree's SDK and by the reference SDK, 16 clients each opening streams one after another, so new
  streams start while the others are mid-stream (`load.stream_first_chunk`); the targets compare
  with the reference measured in the same round;
- invocations/s through the server against the workers directly at 64 sessions: the tree's own
  `benchmarks/throughput.py`, run as `python benchmarks/throughput.py --rounds 1 --sessions 64
  --json [--quick]`, whose last stdout line must be a JSON object with `server_rps` and
  `direct_rps` (medians). A tree without that file gets "not measured" in its column.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load
import versus
from baseline import BASELINE_COMMIT, checkout_of, python_of
from environments import Environment, describe, reference
from servers import serving

THIS = Path(__file__).resolve().parent.parent
RESULTS = THIS / "benchmarks" / "results"
TREES = ("this", "baseline")
STREAMS = 16
SESSIONS = 64
GROUPS = ("server", "throughput", "stream")  # what `--only` can pick: the measurement groups below

# One round's figures: tree → measurement group → figure name → value. Groups a tree could not
# measure hold a note instead: `{"note": "..."}`.
Round = dict[str, dict[str, dict[str, Any]]]


@dataclass
class Settings:
    """How much to measure: `quick` is for checking the whole table end to end in minutes."""

    rounds: int = 3
    quick: bool = False
    frames: int = 500
    streams_per_client: int = 8
    # As server_bench.py's own table: the fork server's pages are shared by the sessions, so fewer
    # sessions each carry a larger share of it (the target is about thousands of sessions).
    idle_sessions: int = 60
    groups: tuple[str, ...] = GROUPS

    @classmethod
    def of(cls, rounds: int | None, quick: bool, only: list[str] | None = None) -> Settings:
        groups = tuple(only) if only else GROUPS
        if quick:
            return cls(rounds or 1, True, frames=200, streams_per_client=4, idle_sessions=4, groups=groups)
        return cls(rounds=rounds or 3, groups=groups)


# Measuring -----------------------------------------------------------------------------------


def _server(checkout: Path, settings: Settings) -> dict[str, Any]:
    try:
        result = versus.one_round(checkout, settings.idle_sessions, settings.quick)
    except subprocess.CalledProcessError as error:
        return {"note": f"server_bench.py failed (exit {error.returncode})"}
    server: dict[str, Any] = {}
    for label, read in versus.METRICS:
        server[label] = read(result)
    return server


def _stream(environment: Environment, settings: Settings) -> dict[str, Any]:
    with serving(environment, "stream_sync:app") as server:
        return load.stream_first_chunk(server.port, STREAMS, settings.frames, settings.streams_per_client)


def _throughput(checkout: Path, settings: Settings) -> dict[str, Any]:
    script = checkout / "benchmarks" / "throughput.py"
    if not script.exists():
        return {"note": "not measured (benchmarks/throughput.py missing)"}
    command = [str(python_of(checkout)), str(script), "--rounds", "1", "--sessions", str(SESSIONS),
               "--json", *(["--quick"] if settings.quick else [])]  # fmt: skip
    try:
        done = subprocess.run(command, cwd=checkout, check=True, capture_output=True, text=True, timeout=900)
        figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return {"server_rps": float(figures["server_rps"]), "direct_rps": float(figures["direct_rps"])}
    except subprocess.CalledProcessError as error:
        return {"note": f"throughput.py failed (exit {error.returncode}): {error.stderr.strip()[-200:]}"}
    except (ValueError, KeyError, IndexError, TypeError):
        return {"note": "throughput.py printed no JSON object with server_rps and direct_rps"}


def measure_round(
    number: int, checkouts: dict[str, Path], environments: dict[str, Environment], settings: Settings
) -> Round:
    """Every row once for each tree (and the reference SDK), trees in alternating order."""
    order = list(TREES) if number % 2 == 0 else list(reversed(TREES))
    out: Round = {name: {} for name in (*TREES, "reference")}
    for name in order:
        if "server" in settings.groups:
            _progress(number, f"server_bench.py of the {name} tree")
            out[name]["server"] = _server(checkouts[name], settings)
        if "throughput" in settings.groups:
            _progress(number, f"throughput.py of the {name} tree")
            out[name]["throughput"] = _throughput(checkouts[name], settings)
    if "stream" in settings.groups:
        for name in [*order, "reference"] if number % 2 == 0 else ["reference", *order]:
            _progress(number, f"SSE streams on the {name} SDK")
            out[name]["stream"] = _stream(environments[name], settings)
    return out


def _progress(number: int, step: str) -> None:
    print(f"issue 13 round {number + 1}: {step}...", file=sys.stderr, flush=True)


# The table -----------------------------------------------------------------------------------


def _figure(group: str, key: str) -> Callable[[Round, str], float | None]:
    def read(one: Round, tree: str) -> float | None:
        value = one[tree].get(group, {}).get(key)
        return float(value) if value is not None else None

    return read


def _versus_reference(key: str) -> Callable[[Round, str], float | None]:
    def read(one: Round, tree: str) -> float | None:
        ours, theirs = one[tree].get("stream", {}).get(key), one["reference"].get("stream", {}).get(key)
        return ours / theirs if ours is not None and theirs else None

    return read


def _through_server(one: Round, tree: str) -> float | None:
    figures = one[tree].get("throughput", {})
    if "server_rps" not in figures or not figures["direct_rps"]:
        return None
    return 100.0 * figures["server_rps"] / figures["direct_rps"]


@dataclass(frozen=True)
class Row:
    """One line of the table: the figure each tree is judged by, and the target."""

    label: str
    read: Callable[[Round, str], float | None]
    target: str
    meets: Callable[[float], bool]
    group: str
    unit: str = ""
    detail: Callable[[list[Round], str], str] = field(default=lambda rounds, tree: "")


def _stream_detail(key: str, unit: str) -> Callable[[list[Round], str], str]:
    def detail(rounds: list[Round], tree: str) -> str:
        ours = _median([one[tree].get("stream", {}).get(key) for one in rounds])
        theirs = _median([one["reference"].get("stream", {}).get(key) for one in rounds])
        if ours is None or theirs is None:
            return ""
        return f" ({_number(ours)} vs {_number(theirs)} {unit})"

    return detail


UNTRACED_P50, UNTRACED_P99 = (f"server overhead {p}, --tracing off (ms)" for p in ("p50", "p99"))
ROWS = (
    Row("server overhead p50 (ms)", _figure("server", "server overhead p50 (ms)"), "< 0.5 ms",
        lambda v: v < 0.5, "server"),
    Row("server overhead p99 (ms)", _figure("server", "server overhead p99 (ms)"), "< 2 ms",
        lambda v: v < 2.0, "server"),
    # What tracing (which the baseline does not have) costs: the same probe with --tracing off.
    Row(UNTRACED_P50, _figure("server", UNTRACED_P50), "< 0.5 ms", lambda v: v < 0.5, "server"),
    Row(UNTRACED_P99, _figure("server", UNTRACED_P99), "< 2 ms", lambda v: v < 2.0, "server"),
    Row("new session → first byte, cold p50 (ms)",
        _figure("server", "new session → first byte, cold p50 (ms)"), "< 50 ms", lambda v: v < 50, "server"),
    Row("new session → first byte, warm p50 (ms)",
        _figure("server", "new session → first byte, warm p50 (ms)"), "< 10 ms", lambda v: v < 10, "server"),
    Row("PSS per idle session (MiB)", _figure("server", "PSS per idle session (MiB)"), "≤ 8 MiB",
        lambda v: v <= 8, "server"),
    Row("SSE, 16 sync-generator streams: first-chunk p99, × reference", _versus_reference("first_p99_ms"),
        "≤ 1× reference", lambda v: v <= 1.0, "stream", "×", _stream_detail("first_p99_ms", "ms")),
    Row("SSE, 16 sync-generator streams: chunks/s, × reference", _versus_reference("frames_per_s"),
        "≥ 4× reference", lambda v: v >= 4.0, "stream", "×", _stream_detail("frames_per_s", "/s")),
    Row(f"invocations/s through the server vs direct, {SESSIONS} sessions (%)", _through_server,
        "≥ 70 %", lambda v: v >= 70, "throughput", " %"),
)  # fmt: skip


def _median(values: list[Any]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return statistics.median(present) if present else None


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _cell(row: Row, rounds: list[Round], tree: str) -> tuple[str, float | None]:
    value = _median([row.read(one, tree) for one in rounds])
    if value is None:
        notes = {one[tree].get(row.group, {}).get("note") for one in rounds} - {None}
        return (", ".join(sorted(notes)) or "not measured"), None
    return f"{_number(value)}{row.unit}{row.detail(rounds, tree)}", value


def render(rounds: list[Round], baseline_name: str, groups: tuple[str, ...] = GROUPS) -> tuple[str, bool]:
    """The markdown table of the rows in `groups`, and whether this tree meets every one's target."""
    lines = [
        f"Issue 13: this tree against the baseline ({baseline_name}), {len(rounds)} interleaved round(s), "
        "medians",
        "",
        "| row | this tree | baseline | this / baseline | target | this tree meets it |",
        "|---|---:|---:|---:|---|---|",
    ]
    all_met = True
    for row in (row for row in ROWS if row.group in groups):
        this_text, this_value = _cell(row, rounds, "this")
        base_text, base_value = _cell(row, rounds, "baseline")
        change = f"{this_value / base_value:.2f}×" if this_value is not None and base_value else "–"
        met = this_value is not None and row.meets(this_value)
        all_met = all_met and met
        verdict = "met" if met else ("not measured" if this_value is None else "NOT MET")
        lines.append(f"| {row.label} | {this_text} | {base_text} | {change} | {row.target} | {verdict} |")
    lines += [
        "",
        "SSE rows: figures in brackets are this tree's (or the baseline's) and the reference SDK's own "
        "medians; the ratio is the median of the per-round ratios against the reference measured in "
        "the same round.",
    ]
    return "\n".join(lines) + "\n", all_met


# Running -------------------------------------------------------------------------------------


def run(baseline_dir: str | None, settings: Settings) -> bool:
    """Measure, print and save the table; True when this tree meets every target."""
    checkouts = {"this": THIS, "baseline": checkout_of(baseline_dir)}
    baseline_name = str(checkouts["baseline"]) if baseline_dir else f"commit {BASELINE_COMMIT[:7]}"
    environments = {
        "this": Environment("this", python_of(THIS) if python_of(THIS).exists() else Path(sys.executable)),
        "baseline": Environment("baseline", python_of(checkouts["baseline"])),
        "reference": reference(),
    }
    for name, environment in environments.items():
        print(f"{name}: {describe(environment)} ({environment.python})", flush=True)
    rounds: list[Round] = []
    for number in range(settings.rounds):
        started = time.perf_counter()
        rounds.append(measure_round(number, checkouts, environments, settings))
        print(
            f"issue 13 round {number + 1}/{settings.rounds} done in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
    table, all_met = render(rounds, baseline_name, settings.groups)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"issue13-{stamp}.md").write_text(table)
    (RESULTS / f"issue13-{stamp}.json").write_text(json.dumps(rounds, indent=2))
    return all_met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline", help=f"a checkout with its own .venv (default: commit {BASELINE_COMMIT[:7]})"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="every row, few samples: a check in minutes")
    parser.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        help="measure only these rows (repeatable): server = server_bench.py's five rows, throughput = "
        "through the server vs direct, stream = the two SSE rows against the reference SDK",
    )
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {int(load.LOAD_CORE)})  # this process drives load: keep it off the servers' core
    run(args.baseline, Settings.of(args.rounds, args.quick, args.only))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
