"""New sessions, this tree against a baseline tree in one run: cold and warm first byte, fork and
fresh, and the memory of idle forked sessions.

    .venv/bin/python benchmarks/session_start.py --baseline DIR [--rounds 10] [--sessions 30]

DIR is another checkout with its own `.venv` (e.g. the main branch); each tree's server runs with
its own code and interpreter. Every server runs as configured here (`--sandbox bwrap`, so every
protection is on: run as root), all at once, pinned to core 0; this process drives them from
core 1. Per round, one cold sample on each of the four cold servers (each tree, `--session-start
fork` and `fresh`, no warm pool) and one warm sample on each tree's warm server (its default
session start, a warm pool of 1, refilled before each sample), in an order that alternates between
rounds. A fork server is kept running by one idle session, as a version with live sessions has it.
Then `--sessions` idle sessions on each tree's fork server: PSS per session (its whole process
tree) plus its share of its fork server's (everything under the fork server that is no session,
spares included). Medians, and this tree's figure as a ratio of the baseline's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load
from runtime_server import RuntimeServer, invocation_headers, invocation_path, new_session_id, running_server
from server_bench import AGENT, MIB, PAYLOAD, RESULTS, first_byte_ms, measure_memory

SANDBOX = ("--sandbox", "bwrap")
TREES = ("this", "baseline")


def _python(tree: Path) -> str:
    python = tree / ".venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"session_start: {tree} has no .venv/bin/python")
    return str(python)


def _keep_forking(server: RuntimeServer, arn: str) -> None:
    """One idle session, so the version's fork server stays up between samples."""
    reply = server.signed("POST", invocation_path(arn), PAYLOAD, invocation_headers(new_session_id()))
    if reply.status != 200:
        raise RuntimeError("the fork server's first session failed")


def run(settings: argparse.Namespace) -> dict[str, Any]:
    pythons = {"this": sys.executable, "baseline": _python(settings.baseline)}
    results: dict[str, Any] = {"cold": {}, "warm": {}, "memory": {}}
    with contextlib.ExitStack() as stack:
        cold: dict[str, tuple[RuntimeServer, str, str]] = {}
        warm: dict[str, tuple[RuntimeServer, str, str]] = {}
        for tree in TREES:
            for mode in ("fork", "fresh"):
                server = stack.enter_context(running_server(
                    warm_pool=0, options=(*SANDBOX, "--session-start", mode), python=pythons[tree]
                ))  # fmt: skip
                runtime_id, arn = server.deploy(AGENT, f"cold_{mode}")
                first_byte_ms(server, arn)  # the first start probes the interpreter once; not a sample
                if mode == "fork":
                    _keep_forking(server, arn)
                cold[f"{tree} {mode}"] = (server, runtime_id, arn)
            server = stack.enter_context(running_server(warm_pool=1, options=SANDBOX, python=pythons[tree]))
            warm[tree] = (server, *server.deploy(AGENT, "warm"))
        for number in range(settings.rounds):
            keys = list(cold) if number % 2 else list(reversed(cold))
            for key in keys:
                server, _, arn = cold[key]
                results["cold"].setdefault(key, []).append(first_byte_ms(server, arn))
            for tree in TREES if number % 2 else reversed(TREES):
                server, runtime_id, arn = warm[tree]
                server.wait_warm_pool(runtime_id)
                results["warm"].setdefault(tree, []).append(first_byte_ms(server, arn))
            print(f"round {number + 1}/{settings.rounds} done", flush=True)
        for tree in TREES:  # the version the cold samples used: one fork server, and its spare
            results["memory"][tree] = measure_memory(*cold[f"{tree} fork"], settings.sessions)
    return results


def render(results: dict[str, Any]) -> str:
    def ratio(this: float, baseline: float) -> str:
        return f"{this / baseline:.2f}×" if baseline else ""

    lines = [
        "| new session, `--sandbox bwrap` as root | this tree | baseline | ratio |",
        "|---|---:|---:|---:|",
    ]
    for mode in ("fork", "fresh"):
        this, base = (statistics.median(results["cold"][f"{tree} {mode}"]) for tree in TREES)
        lines.append(f"| cold first byte p50, {mode} (ms) | {this:.1f} | {base:.1f} | {ratio(this, base)} |")
    this, base = (statistics.median(results["warm"][tree]) for tree in TREES)
    warm = f"| warm first byte p50, default start (ms) | {this:.1f} | {base:.1f}"
    lines.append(f"{warm} | {ratio(this, base)} |")
    this, base = (results["memory"][tree]["pss_with_fork_server_share_kib"] / MIB for tree in TREES)
    sessions = results["memory"]["this"]["sessions"]
    lines.append(
        f"| PSS per idle forked session, {sessions} sessions, with its fork server share (MiB) "
        f"| {this:.2f} | {base:.2f} | {ratio(this, base)} |"
    )
    samples = len(results["cold"]["this fork"])
    lines += ["", f"{samples} samples per cold and warm figure; medians; server + workers on core 0."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout with its own .venv")
    parser.add_argument("--rounds", type=int, default=10, help="samples per figure (default 10)")
    parser.add_argument("--sessions", type=int, default=30, help="idle sessions for PSS (default 30)")
    settings = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("session_start: forked sessions are sandboxed only as root; run as root")
    os.sched_setaffinity(0, {int(load.LOAD_CORE)})
    started = time.perf_counter()
    results = run(settings)
    table = render(results)
    print(table)
    print(f"session-start benchmark took {time.perf_counter() - started:.0f}s")
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"session-start-{stamp}.md").write_text(table)
    (RESULTS / f"session-start-{stamp}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
