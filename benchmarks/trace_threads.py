"""Where a traced invocation's CPU goes, per thread, on both sides: the server's threads by name and
the agents' threads by name (summed over every worker), in µs per call, for this checkout and a
baseline side by side.

    .venv/bin/python benchmarks/trace_threads.py [--sessions 16] [--seconds 4] [--rounds 2]
                                                 [--baseline DIR] [-- SERVER OPTIONS...]

Per round and tree: a server as `throughput.py` starts it (core 0, warm pool 0) with N sessions of
the hello agent; one short wrk run to warm up; then each thread's CPU time is read from
`/proc/PID/task/TID/stat` before a wrk run of `--seconds` and again `--settle` seconds after it,
so the agents' batched span exports for those calls (sent every 5 s) and the server's span writes
are counted. Threads are named with `py-spy dump` (install it into the .venv: `pip install py-spy`);
an agent's threads are summed by name over all workers, and CPU of processes py-spy cannot name
(fork servers' helpers, reapers) is "other". Medians over rounds; read the differences between
threads and trees, not the absolutes, on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import HERE, run_wrk, server_contender

_PY_SPY = Path(sys.executable).parent / "py-spy"
_THREAD = re.compile(r'^Thread (\d+) \([^)]*\): "([^"]*)"', re.MULTILINE)
_TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of each thread of `pid` (empty once it is gone)."""
    found: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        found[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


def thread_names(pid: int) -> dict[int, str]:
    """Python thread names of `pid` by OS thread id, from `py-spy dump` (empty if it cannot tell).
    A sandboxed worker has its own pid namespace, where py-spy reports its threads' ids: each is
    matched through the last `NSpid` entry of the thread's status."""
    try:
        done = subprocess.run(
            [str(_PY_SPY), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    by_inner = {int(tid): name for tid, name in _THREAD.findall(done.stdout)}
    names: dict[int, str] = {}
    for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else ():
        try:
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        inner = [line.split()[-1] for line in status.splitlines() if line.startswith("NSpid:")]
        name = by_inner.get(int(inner[0])) if inner else None
        if name is not None:
            names[int(tid)] = name
    return names


def _by_name(pids: list[int], names: dict[int, str]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for pid in pids:
        for tid, seconds in thread_cpu(pid).items():
            totals[names.get(tid, "other")] += seconds
    return totals


def measure_tree(checkout: Path, sessions: int, seconds: float, settle: float, options: tuple[str, ...]):
    """(server µs per call by thread, agents' µs per call by thread name, calls/s) for one run."""
    with server_contender(checkout, sessions, "0", options) as contender:
        targets = contender.targets(sessions)
        run_wrk(targets, 1, 1, "1")  # warm-up: every worker has made its threads
        time.sleep(settle)
        server_pid = contender.server.pid
        workers = contender.worker_pids()
        server_names = thread_names(server_pid)
        worker_names: dict[int, str] = {}
        for pid in workers:
            worker_names.update(thread_names(pid))
        before_server = _by_name([server_pid], server_names)
        before_workers = _by_name(workers, worker_names)
        load = run_wrk(targets, seconds, 1, "1")
        time.sleep(settle)
        after_server = _by_name([server_pid], server_names)
        after_workers = _by_name(workers, worker_names)
    calls = max(1, load.requests)

    def per_call(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
        return {name: 1e6 * (after[name] - before.get(name, 0.0)) / calls for name in after}

    return per_call(after_server, before_server), per_call(after_workers, before_workers), load.rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=6.0, help="seconds after the load (default 6)")
    parser.add_argument("--baseline", type=Path, help="another checkout with its own .venv")
    parser.add_argument("--with-off", action="store_true", help="also this checkout with --tracing off")
    parser.add_argument("server_options", nargs="*", help="after --: options for this checkout's server")
    args = parser.parse_args(argv)
    if not _PY_SPY.exists():
        parser.error(f"{_PY_SPY} is missing: pip install py-spy into this .venv")
    trees: dict[str, tuple[Path, tuple[str, ...]]] = {"this": (HERE, tuple(args.server_options))}
    if args.with_off:
        trees["this, off"] = (HERE, ("--tracing", "off"))
    if args.baseline is not None:
        trees["baseline"] = (args.baseline.resolve(), ())
    results: dict[str, list[tuple[dict[str, float], dict[str, float], float]]] = defaultdict(list)
    for _ in range(args.rounds):
        for label, (checkout, options) in trees.items():
            run = measure_tree(checkout, args.sessions, args.seconds, args.settle, options)
            results[label].append(run)
            print(
                f"  {label}: server {sum(run[0].values()):.0f} µs, agents {sum(run[1].values()):.0f}"
                f" µs per call, {run[2]:.0f} calls/s (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    print(
        f"{args.sessions} sessions, {args.rounds} rounds of {args.seconds:g} s, load {os.getloadavg()[0]:.1f}"
    )
    for side, index in (("server", 0), ("agents", 1)):
        names = sorted({name for runs in results.values() for run in runs for name in run[index]})
        print(f"\n{side}: µs of CPU per call (median over rounds)")
        print(f"  {'thread':28s}" + "".join(f"{label:>12s}" for label in trees))
        for name in [*names, "total"]:
            cells = []
            for label in trees:
                values = [sum(run[index].values()) if name == "total" else run[index].get(name, 0.0)
                          for run in results[label]]  # fmt: skip
                cells.append(f"{statistics.median(values):12.0f}")
            print(f"  {name:28s}" + "".join(cells))
    rates = "  ".join(
        f"{label} {statistics.median(run[2] for run in results[label]):.0f}/s" for label in trees
    )
    print(f"\ncalls/s: {rates}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
