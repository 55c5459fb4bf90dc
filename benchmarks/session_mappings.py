"""Where an idle forked session's memory is: PSS and private dirty memory per kind of mapping, for
this tree and a baseline tree in one run.

    .venv/bin/python benchmarks/session_mappings.py --baseline DIR [--sessions 40]

Each tree's server runs `--sandbox bwrap` (every protection on: run as root) and starts
`--sessions` sessions of the hello agent (one call each), left idle. Every process of every session
is read from `/proc/PID/smaps`, and its mappings grouped by what they are: the interpreter, each
shared library, the heap, thread stacks, Python's arenas, other anonymous memory. The table gives
the mean per session (KiB), so the biggest private parts are the ones to cut; the fork server's
share (its own tree and its spare, divided among the sessions) is one row of its own.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime_server import (
    RuntimeServer,
    process_tree,
    running_server,
)
from server_bench import AGENT, IDLE_SETTLE_SECONDS, RESULTS, smaps_rollup, start_sessions

SANDBOX = ("--sandbox", "bwrap")
TREES = ("this", "baseline")
FIELDS = ("Pss", "Private_Dirty", "Rss")
_KIB = 1024


def _kind(name: str, size_kib: int) -> str:
    """A mapping's group: its file's name, a kernel name ([heap], [stack]), or anonymous memory by
    the size that says what made it (a thread's stack, a malloc arena, Python's arenas)."""
    if name.startswith("/memfd:"):
        return "memfd " + name.split(":", 1)[1].split()[0]
    if name.startswith("/"):
        base = os.path.basename(name)
        return (
            "libpython"
            if base.startswith("libpython")
            else ("python" if base.startswith("python3") else base)
        )
    if name:
        return name
    if size_kib >= 60 * _KIB:
        return "anon: malloc arena (64 MiB reserve)"
    if 8 * _KIB <= size_kib <= 8 * _KIB + 8:
        return "anon: thread stack (8 MiB)"
    if size_kib == _KIB:
        return "anon: 1 MiB (Python arena)"
    if size_kib == 256:
        return "anon: 256 KiB (Python arena)"
    return "anon: other"


def mappings(pid: int) -> dict[str, dict[str, int]]:
    """KiB per group of `pid`'s mappings, for each of `FIELDS`."""
    out: dict[str, dict[str, int]] = collections.defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    kind = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head, _, rest = line.partition(" ")
        if "-" in head and not head.endswith(":"):
            start, end = (int(part, 16) for part in head.split("-"))
            fields = rest.split(None, 4)
            kind = _kind(fields[4].strip() if len(fields) > 4 else "", (end - start) // _KIB)
            continue
        field = head.rstrip(":")
        if field in FIELDS:
            out[kind][field] += int(rest.split()[0])
    return out


def _merge(total: dict[str, dict[str, float]], part: dict[str, dict[str, int]], scale: float) -> None:
    for kind, values in part.items():
        row = total.setdefault(kind, dict.fromkeys(FIELDS, 0.0))
        for field in FIELDS:
            row[field] += values[field] * scale


def measure(server: RuntimeServer, runtime_id: str, arn: str, count: int, settle: float) -> dict[str, Any]:
    """Start `count` idle sessions; the mean per session of each group, and of each process role."""
    start_sessions(server, arn, count)
    time.sleep(settle)  # not synchronisation: idle as they stay, spans exported (see server_bench.py)
    sessions = server.sessions(runtime_id)
    groups: dict[str, dict[str, float]] = {}
    roles: dict[str, list[int]] = collections.defaultdict(list)
    in_sessions: set[int] = set()
    for session in sessions:
        tree = process_tree(int(session["pid"]))
        in_sessions.update(tree)
        for depth, pid in enumerate(tree):
            with contextlib.suppress(OSError):
                _merge(groups, mappings(pid), 1 / len(sessions))
                roles[f"session process {depth}"].append(smaps_rollup(pid)["Pss"])
    shared = [
        pid for outer in server.fork_server_pids() for pid in process_tree(outer) if pid not in in_sessions
    ]
    fork_share = sum(smaps_rollup(pid)["Pss"] for pid in shared) / len(sessions)
    groups["(fork server and spare, share)"] = {"Pss": fork_share, "Private_Dirty": 0.0, "Rss": 0.0}
    return {
        "sessions": len(sessions),
        "groups": groups,
        "roles": {role: statistics.mean(values) for role, values in roles.items()},
        "pss_per_session_kib": sum(row["Pss"] for row in groups.values()),
    }


def render(results: dict[str, Any]) -> str:
    this, base = (results[tree]["groups"] for tree in TREES)
    kinds = sorted(
        set(this) | set(base),
        key=lambda k: -max(this.get(k, {}).get("Pss", 0), base.get(k, {}).get("Pss", 0)),
    )
    lines = [
        f"PSS per idle forked session, {results['this']['sessions']} sessions (KiB, mean per session)",
        "",
        "| mapping | PSS this | PSS baseline | private dirty this | private dirty baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in kinds:
        row = [this.get(kind, {}), base.get(kind, {})]
        pss = [r.get("Pss", 0.0) for r in row]
        dirty = [r.get("Private_Dirty", 0.0) for r in row]
        if max(pss) < 8:
            continue
        lines.append(f"| {kind} | {pss[0]:.0f} | {pss[1]:.0f} | {dirty[0]:.0f} | {dirty[1]:.0f} |")
    totals = [results[tree]["pss_per_session_kib"] / _KIB for tree in TREES]
    lines.append(f"| **total (MiB)** | **{totals[0]:.2f}** | **{totals[1]:.2f}** | | |")
    lines += ["", "| process of a session | PSS this | PSS baseline |", "|---|---:|---:|"]
    for role in sorted(set(results["this"]["roles"]) | set(results["baseline"]["roles"])):
        values = [results[tree]["roles"].get(role, 0.0) for tree in TREES]
        lines.append(f"| {role} | {values[0]:.0f} | {values[1]:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout with its own .venv")
    parser.add_argument("--sessions", type=int, default=40, help="idle sessions per tree (default 40)")
    parser.add_argument(
        "--settle", type=float, default=IDLE_SETTLE_SECONDS,
        help=f"seconds idle before reading (default {IDLE_SETTLE_SECONDS:g}: their spans exported)",
    )  # fmt: skip
    settings = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("session_mappings: forked sessions are sandboxed only as root; run as root")
    baseline_python = settings.baseline / ".venv" / "bin" / "python"
    if not baseline_python.exists():
        raise SystemExit(f"session_mappings: {settings.baseline} has no .venv/bin/python")
    pythons = {"this": sys.executable, "baseline": str(baseline_python)}
    results: dict[str, Any] = {}
    for tree in TREES:
        options = (*SANDBOX, "--session-start", "fork")
        with running_server(warm_pool=0, options=options, python=pythons[tree]) as server:
            runtime_id, arn = server.deploy(AGENT, "mappings")
            results[tree] = measure(server, runtime_id, arn, settings.sessions, settings.settle)
    table = render(results)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"session-mappings-{stamp}.md").write_text(table)
    (RESULTS / f"session-mappings-{stamp}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
