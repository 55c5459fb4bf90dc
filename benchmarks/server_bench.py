"""`make bench`, part two: the runtime server's own costs, side by side in one run.

Three `agentcore server run` processes host the same hello agent: one with a warm pool of 1, one
without, and one with a warm pool and `--tracing off`. All and their workers run on core 0; this
process drives them from core 1.

- overhead: the same worker invoked directly on its unix socket and through InvokeAgentRuntime
  (SigV4), pairs interleaved (order alternating); per round, p50/p99 of each and their difference.
  The same probe on the `--tracing off` server, in alternating order, gives what tracing costs.
- new session to first byte: a new session id on the warm-pool server and on the cold one, in
  turns; before each sample the warm pool has refilled, and after it the session is stopped.
- memory: N idle sessions on the cold server; the PSS of each worker's whole process tree and
  the server's RSS growth, extrapolated to how many idle sessions fit in 24 GiB.
- a burst: BURST new sessions at once on the warm-pool server, twice (the pool grows to the
  first burst's size, so the second should find every worker ready); first byte of each.
- session start, fresh vs fork: two more servers with `--sandbox bwrap` (`--start-sandbox`), one
  `--session-start fresh` and one `--session-start fork`, both without a warm pool: cold first
  byte in turns, then N idle sessions on each (a forked session's PSS, its reaper and the process
  that forked it included, plus its share of its fork server's whole sandbox).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load
from runtime_server import (
    RuntimeServer,
    UnixConnection,
    exchange,
    invocation_headers,
    invocation_path,
    is_python,
    new_session_id,
    page_tables_kib,
    process_tree,
    rss_kib,
    running_server,
    smaps_rollup,
    socket_of,
)
from servers import AGENTS

RESULTS = Path(__file__).resolve().parent / "results"
AGENT = AGENTS / "hello_sync.py"
PAYLOAD = json.dumps({"name": "bench"}).encode()
MACHINE_KIB = 24 * 1024 * 1024
GOAL_SESSIONS = 500
IDLE_SETTLE_SECONDS = 6.0
BURST = 6


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# Overhead per invocation -------------------------------------------------------------------


def _worker_socket(server: RuntimeServer, runtime_id: str, session_id: str) -> str:
    (session,) = [s for s in server.sessions(runtime_id) if s["sessionId"] == session_id]
    return socket_of(int(session["pid"]), server.data_dir)


def measure_overhead(server: RuntimeServer, runtime_id: str, arn: str, pairs: int) -> dict[str, Any]:
    """Milliseconds of the same invocation, direct to the worker and through the server, interleaved."""
    session_id = new_session_id()
    via = server.connection()
    path = invocation_path(arn)
    headers = invocation_headers(session_id)
    if server.signed("POST", path, PAYLOAD, headers, via).status != 200:
        raise RuntimeError("the first invocation of the overhead session failed")
    direct = UnixConnection(_worker_socket(server, runtime_id, session_id))
    direct_ms: list[float] = []
    server_ms: list[float] = []
    signing_ms: list[float] = []

    def through_server() -> None:
        started = time.perf_counter()
        signed = server.signer.headers("POST", path, PAYLOAD, headers)
        signing_ms.append((time.perf_counter() - started) * 1000)
        reply = exchange(via, "POST", path, PAYLOAD, signed)
        if reply.status != 200:
            raise RuntimeError(f"invocation through the server failed: {reply.status} {reply.body[:200]!r}")
        server_ms.append(reply.total_s * 1000)

    def to_worker() -> None:
        reply = exchange(direct, "POST", "/invocations", PAYLOAD, headers)
        if reply.status != 200:
            raise RuntimeError(f"direct invocation failed: {reply.status} {reply.body[:200]!r}")
        direct_ms.append(reply.total_s * 1000)

    try:
        for _ in range(20):  # both connections open, both code paths warm
            to_worker()
            through_server()
        for warm_up in (direct_ms, server_ms, signing_ms):
            warm_up.clear()
        for number in range(pairs):
            first, second = (to_worker, through_server) if number % 2 else (through_server, to_worker)
            first()
            second()
    finally:
        direct.close()
        via.close()
        server.signed("POST", invocation_path(arn, "stopruntimesession"), b"{}", headers)
    paired = [b - a for a, b in zip(direct_ms, server_ms, strict=True)]
    return {
        "direct_p50_ms": quantile(direct_ms, 0.5),
        "direct_p99_ms": quantile(direct_ms, 0.99),
        "server_p50_ms": quantile(server_ms, 0.5),
        "server_p99_ms": quantile(server_ms, 0.99),
        "overhead_p50_ms": quantile(server_ms, 0.5) - quantile(direct_ms, 0.5),
        "overhead_p99_ms": quantile(server_ms, 0.99) - quantile(direct_ms, 0.99),
        "paired_difference_p50_ms": quantile(paired, 0.5),
        "ratio_p50": quantile(server_ms, 0.5) / quantile(direct_ms, 0.5),
        "signing_p50_ms": quantile(signing_ms, 0.5),
    }


# New session to first byte -----------------------------------------------------------------


def first_byte_ms(server: RuntimeServer, arn: str) -> float:
    """Milliseconds from sending a new session's first invocation to its first response byte."""
    session_id = new_session_id()
    headers = invocation_headers(session_id)
    connection = server.connection()
    try:
        reply = server.signed("POST", invocation_path(arn), PAYLOAD, headers, connection)
        if reply.status != 200:
            raise RuntimeError(f"new session failed: {reply.status} {reply.body[:300]!r}")
        stopped = server.signed(
            "POST", invocation_path(arn, "stopruntimesession"), b"{}", headers, connection
        )
        if stopped.status != 200:
            raise RuntimeError(f"StopRuntimeSession failed: {stopped.status} {stopped.body[:300]!r}")
    finally:
        connection.close()
    return reply.first_byte_s * 1000


def measure_new_sessions(
    warm: tuple[RuntimeServer, str, str], cold: tuple[RuntimeServer, str, str], samples: int
) -> dict[str, list[float]]:
    """`samples` first-byte times on each server, in turns, each with the warm pool refilled first."""
    warm_server, warm_id, warm_arn = warm
    cold_server, _, cold_arn = cold
    out: dict[str, list[float]] = {"warm_ms": [], "cold_ms": []}
    for _ in range(samples):
        warm_server.wait_warm_pool(warm_id)
        out["warm_ms"].append(first_byte_ms(warm_server, warm_arn))
        warm_server.wait_warm_pool(warm_id)  # its refill must not compete with the cold start
        out["cold_ms"].append(first_byte_ms(cold_server, cold_arn))
    return out


def measure_bursts(server: RuntimeServer, runtime_id: str, arn: str, size: int) -> dict[str, list[float]]:
    """First bytes of `size` new sessions sent at once, twice: before and after the pool has grown
    to the first burst's demand."""

    def burst() -> list[float]:
        with concurrent.futures.ThreadPoolExecutor(size) as pool:
            return list(pool.map(lambda _: first_byte_ms(server, arn), range(size)))

    first = burst()
    minimum, server.warm_pool = server.warm_pool, size
    try:
        server.wait_warm_pool(runtime_id)  # grown by the first burst's demand
    finally:
        server.warm_pool = minimum
    return {"first_burst_ms": first, "second_burst_ms": burst()}


# Memory per idle session -------------------------------------------------------------------


@dataclass(frozen=True)
class SessionMemory:
    """KiB of one idle session's process tree (PSS splits shared pages between their users)."""

    pss: int
    pss_anon: int
    pss_file: int
    python_pss: int
    sandbox_pss: int
    page_tables: int
    processes: int


def session_memory(pid: int) -> SessionMemory:
    tree = process_tree(pid)
    rollups = {member: smaps_rollup(member) for member in tree}
    python = sum(r["Pss"] for member, r in rollups.items() if is_python(member))
    total = sum(r["Pss"] for r in rollups.values())
    return SessionMemory(
        pss=total,
        pss_anon=sum(r.get("Pss_Anon", 0) for r in rollups.values()),
        pss_file=sum(r.get("Pss_File", 0) for r in rollups.values()),
        python_pss=python,
        sandbox_pss=total - python,
        page_tables=sum(page_tables_kib(member) for member in tree),
        processes=len(tree),
    )


def measure_start_paths(
    fresh: tuple[RuntimeServer, str, str], fork: tuple[RuntimeServer, str, str], samples: int
) -> dict[str, list[float]]:
    """`samples` cold first-byte times on the fresh-start and the fork server, in turns. The fork
    server is kept running by one idle session (as a version with live sessions has it)."""
    fork_server, _, fork_arn = fork
    keeper = invocation_headers(new_session_id())
    if fork_server.signed("POST", invocation_path(fork_arn), PAYLOAD, keeper).status != 200:
        raise RuntimeError("the fork server's first session failed")
    out: dict[str, list[float]] = {"fresh_ms": [], "fork_ms": []}
    try:
        for number in range(samples):
            order = [("fresh_ms", fresh), ("fork_ms", fork)]
            for key, (server, _, arn) in order if number % 2 else reversed(order):
                out[key].append(first_byte_ms(server, arn))
    finally:
        fork_server.signed("POST", invocation_path(fork_arn, "stopruntimesession"), b"{}", keeper)
    return out


def start_sessions(server: RuntimeServer, arn: str, count: int) -> None:
    """Start `count` new sessions, one invocation each, on one kept-alive connection."""
    connection = server.connection()
    try:
        for _ in range(count):
            reply = server.signed(
                "POST", invocation_path(arn), PAYLOAD, invocation_headers(new_session_id()), connection
            )
            if reply.status != 200:
                raise RuntimeError(f"session start failed: {reply.status} {reply.body[:300]!r}")
    finally:
        connection.close()


def measure_memory(server: RuntimeServer, runtime_id: str, arn: str, count: int) -> dict[str, Any]:
    """Start `count` sessions (one invocation each), leave them idle, measure them and the server
    (and its fork servers, shared by their sessions)."""
    before = rss_kib(server.pid)
    started = time.perf_counter()
    start_sessions(server, arn, count)
    start_seconds = time.perf_counter() - started
    # Not synchronisation: an idle session as it stays, its first call's spans exported too (the
    # OpenTelemetry SDK's batch processor exports 5 s after a span ends, unless OTEL_BSP_SCHEDULE_DELAY).
    time.sleep(IDLE_SETTLE_SECONDS)
    sessions = server.sessions(runtime_id)
    memory = [session_memory(int(session["pid"])) for session in sessions]
    after = rss_kib(server.pid)
    server_growth = (after - before) / count
    # A fork server's whole sandbox (bubblewrap's processes too), less the sessions forked in it.
    in_sessions = {pid for session in sessions for pid in process_tree(int(session["pid"]))}
    fork_servers = sum(
        smaps_rollup(pid)["Pss"]
        for outer in server.fork_server_pids()
        for pid in process_tree(outer)
        if pid not in in_sessions
    )
    mean = {f.name: statistics.mean(getattr(m, f.name) for m in memory) for f in fields(SessionMemory)}
    per_session = mean["pss"] + mean["page_tables"] + max(0.0, server_growth) + fork_servers / len(memory)
    return {
        "sessions": len(sessions),
        "fork_server_pss_kib": fork_servers,
        "pss_with_fork_server_share_kib": mean["pss"] + fork_servers / len(memory),
        "start_seconds": start_seconds,
        "per_session_kib": {f"mean_{name}": value for name, value in mean.items()},
        "max_pss_kib": max(m.pss for m in memory),
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "server_growth_per_session_kib": server_growth,
        "total_per_session_kib": per_session,
        "sessions_in_24_gib": int((MACHINE_KIB - before) / per_session),
    }


# Report ------------------------------------------------------------------------------------


MIB = 1024


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def _per_round(rounds: list[dict[str, Any]], key: str) -> str:
    return ", ".join(f"{r[key]:.2f}" for r in rounds)


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _verdict(passed: bool) -> str:
    return "pass" if passed else "MISS"


def _untraced_row(rounds: list[dict[str, Any]]) -> str:
    """The overhead on the same server with `--tracing off`: what tracing costs, and the figure a
    tree without tracing (the issue's baseline) is compared with."""
    return _row(
        "server overhead, --tracing off (ms)", _ms(_median(rounds, "overhead_p50_ms")),
        _ms(_median(rounds, "overhead_p99_ms")),
        f"{_per_round(rounds, 'overhead_p50_ms')} (p99: {_per_round(rounds, 'overhead_p99_ms')})", "", "", "",
    )  # fmt: skip


def _overhead_rows(rounds: list[dict[str, Any]]) -> tuple[list[str], list[bool]]:
    p50, p99 = _median(rounds, "overhead_p50_ms"), _median(rounds, "overhead_p99_ms")
    checks = [p50 < 1.0, p99 < 5.0]
    ratio = f"{_median(rounds, 'ratio_p50'):.2f}× direct ({_per_round(rounds, 'ratio_p50')})"
    rows = [
        _row(
            "invoke direct on the worker's socket (ms)", _ms(_median(rounds, "direct_p50_ms")),
            _ms(_median(rounds, "direct_p99_ms")), _per_round(rounds, "direct_p50_ms"), "", "", "",
        ),
        _row(
            "invoke through the server, SigV4 (ms)", _ms(_median(rounds, "server_p50_ms")),
            _ms(_median(rounds, "server_p99_ms")), _per_round(rounds, "server_p50_ms"), ratio, "", "",
        ),
        _row(
            "server overhead, through − direct (ms)", _ms(p50), _ms(p99),
            f"{_per_round(rounds, 'overhead_p50_ms')} (p99: {_per_round(rounds, 'overhead_p99_ms')})", "",
            "p50 < 1 ms, p99 < 5 ms", ", ".join(_verdict(check) for check in checks),
        ),
    ]  # fmt: skip
    return rows, checks


def _new_session_rows(warm: list[float], cold: list[float]) -> tuple[list[str], list[bool]]:
    warm_p50, cold_p50 = statistics.median(warm), statistics.median(cold)
    checks = [warm_p50 < 50, cold_p50 < 1500]
    rows = [
        _row(
            "new session → first byte, warm pool (ms)", _ms(warm_p50), f"{_ms(max(warm))} (max)",
            f"{len(warm)} samples", f"{warm_p50 / cold_p50:.3f}× cold", "p50 < 50 ms", _verdict(checks[0]),
        ),
        _row(
            "new session → first byte, cold (ms)", _ms(cold_p50), f"{_ms(max(cold))} (max)",
            f"{len(cold)} samples", "", "p50 < 1,500 ms", _verdict(checks[1]),
        ),
    ]  # fmt: skip
    return rows, checks


def _burst_rows(bursts: dict[str, list[float]]) -> tuple[list[str], list[bool]]:
    first, second = bursts["first_burst_ms"], bursts["second_burst_ms"]
    ratio = statistics.median(second) / statistics.median(first)
    checks = [statistics.median(second) < 50]
    rows = [
        _row(
            f"burst of {len(first)} new sessions → first byte, pool of 1 (ms)", _ms(statistics.median(first)),
            f"{_ms(max(first))} (max)", "the pool grows to the burst's size", "", "", "",
        ),
        _row(
            f"the next burst of {len(second)}, pool grown (ms)", _ms(statistics.median(second)),
            f"{_ms(max(second))} (max)", "", f"{ratio:.3f}× first",
            "p50 < 50 ms", _verdict(checks[0]),
        ),
    ]  # fmt: skip
    return rows, checks


def _memory_rows(memory: dict[str, Any]) -> tuple[list[str], list[bool]]:
    mean = {name: value / MIB for name, value in memory["per_session_kib"].items()}
    checks = [memory["sessions_in_24_gib"] >= GOAL_SESSIONS]
    split = (
        f"python {mean['mean_python_pss']:.1f} + bwrap {mean['mean_sandbox_pss']:.1f}; "
        f"anon {mean['mean_pss_anon']:.1f}, file {mean['mean_pss_file']:.1f}; "
        f"page tables {mean['mean_page_tables']:.2f}"
    )
    server = f"{memory['server_rss_before_kib'] / MIB:.0f} → {memory['server_rss_after_kib'] / MIB:.0f} MiB"
    rows = [
        _row(
            f"PSS per idle session (MiB), {memory['sessions']} sessions", f"{mean['mean_pss']:.1f} (mean)",
            f"{memory['max_pss_kib'] / MIB:.1f} (max)", split, "", "", "",
        ),
        _row(
            "server RSS growth per session (MiB)", f"{memory['server_growth_per_session_kib'] / MIB:.2f}",
            "", server, "", "", "",
        ),
        _row(
            "idle sessions in 24 GiB", f"{memory['sessions_in_24_gib']:,}", "",
            f"{memory['total_per_session_kib'] / MIB:.1f} MiB each: PSS + page tables + server growth",
            "", f"≥ {GOAL_SESSIONS}", _verdict(checks[0]),
        ),
    ]  # fmt: skip
    return rows, checks


def _start_path_rows(results: dict[str, Any]) -> tuple[list[str], list[bool]]:
    """Fresh vs fork, same sandbox: cold first byte and idle memory, with the issue's targets."""
    box = f"--sandbox {results.get('start_sandbox', 'none')}"
    fresh, fork = results["start_paths"]["fresh_ms"], results["start_paths"]["fork_ms"]
    fresh_p50, fork_p50 = statistics.median(fresh), statistics.median(fork)
    memory_fresh, memory_fork = results["memory_fresh"], results["memory_fork"]
    pss_fresh = memory_fresh["pss_with_fork_server_share_kib"] / MIB
    pss_fork = memory_fork["pss_with_fork_server_share_kib"] / MIB
    checks = [fork_p50 < 50, pss_fork <= 8]
    fork_server = memory_fork["fork_server_pss_kib"] / MIB
    rows = [
        _row(
            f"new session → first byte, cold, fresh process, {box} (ms)", _ms(fresh_p50),
            f"{_ms(max(fresh))} (max)", f"{len(fresh)} samples", "", "", "",
        ),
        _row(
            f"new session → first byte, cold, forked, {box} (ms)", _ms(fork_p50),
            f"{_ms(max(fork))} (max)", f"{len(fork)} samples", f"{fork_p50 / fresh_p50:.3f}× fresh",
            "p50 < 50 ms", _verdict(checks[0]),
        ),
        _row(
            f"PSS per idle session, fresh, {box} (MiB), {memory_fresh['sessions']} sessions",
            f"{pss_fresh:.1f} (mean)", f"{memory_fresh['max_pss_kib'] / MIB:.1f} (max)",
            f"{memory_fresh['sessions_in_24_gib']:,} in 24 GiB", "", "", "",
        ),
        _row(
            f"PSS per idle session, forked, {box} (MiB), {memory_fork['sessions']} sessions",
            f"{pss_fork:.1f} (mean)",
            f"{memory_fork['max_pss_kib'] / MIB:.1f} (max)",
            f"incl. a share of the fork server's {fork_server:.1f}; "
            f"{memory_fork['sessions_in_24_gib']:,} in 24 GiB",
            f"{pss_fork / pss_fresh:.3f}× fresh", "≤ 8 MiB", _verdict(checks[1]),
        ),
    ]  # fmt: skip
    return rows, checks


def render(results: dict[str, Any]) -> tuple[str, bool]:
    """The markdown table, and whether every target passed."""
    overhead = results["overhead_rounds"]
    untraced = results.get("overhead_untraced_rounds")
    sections = [
        _overhead_rows(overhead),
        *([([_untraced_row(untraced)], [])] if untraced else []),
        _new_session_rows(results["new_session"]["warm_ms"], results["new_session"]["cold_ms"]),
        *([_burst_rows(results["bursts"])] if "bursts" in results else []),
        _memory_rows(results["memory"]),
        *([_start_path_rows(results)] if "start_paths" in results else []),
    ]
    lines = [
        f"Runtime-server benchmark, {len(overhead)} interleaved round(s); agent {AGENT.name}; "
        f"workers sandboxed: {results['sandbox']}; server + workers on core 0, client on core 1",
        "",
        "| metric | p50 | p99 | per round (p50) | ratio | target | |",
        "|---|---:|---:|---|---:|---|---|",
        *(row for rows, _ in sections for row in rows),
        "",
        "Through the server = client-side time from sending a signed POST on a keep-alive connection to "
        "the last body byte; SigV4 signing happens before the clock starts (p50 "
        f"{_median(overhead, 'signing_p50_ms'):.3f} ms). Direct = the same POST on a keep-alive unix "
        "socket connection to the session's own worker. First byte = response head and first body chunk.",
    ]
    return "\n".join(lines) + "\n", all(check for _, checks in sections for check in checks)


# Run ---------------------------------------------------------------------------------------


def run(settings: argparse.Namespace) -> dict[str, Any]:
    """Every measurement on the servers started for this run; all stopped (with their workers) after."""
    with (
        running_server(warm_pool=1) as warm_server,
        running_server(warm_pool=0) as cold_server,
        running_server(warm_pool=1, options=("--tracing", "off")) as untraced_server,
    ):
        warm_id, warm_arn = warm_server.deploy(AGENT, "hello_warm")
        untraced = (untraced_server, *untraced_server.deploy(AGENT, "hello_untraced"))
        cold_id, cold_arn = cold_server.deploy(AGENT, "hello_cold")
        first_byte_ms(cold_server, cold_arn)  # the first start probes the interpreter once; not a sample
        results: dict[str, Any] = {
            "sandbox": warm_server.health()["sandbox"],
            "overhead_rounds": [],
            "overhead_untraced_rounds": [],
            "new_session": {"warm_ms": [], "cold_ms": []},
        }
        for number in range(1, settings.rounds + 1):
            started = time.perf_counter()
            warm_server.wait_warm_pool(warm_id)
            untraced_server.wait_warm_pool(untraced[1])
            # The same probe with tracing off, in alternating order: what tracing costs.
            traced = (warm_server, warm_id, warm_arn)
            probes = [("overhead_rounds", traced), ("overhead_untraced_rounds", untraced)]
            for key, (server, runtime_id, arn) in probes if number % 2 else probes[::-1]:
                results[key].append(measure_overhead(server, runtime_id, arn, settings.pairs))
            samples = measure_new_sessions(
                (warm_server, warm_id, warm_arn), (cold_server, cold_id, cold_arn), settings.starts
            )
            for key, values in samples.items():
                results["new_session"][key] += values
            print(
                f"server round {number}/{settings.rounds} done in {time.perf_counter() - started:.0f}s",
                flush=True,
            )
        warm_server.wait_warm_pool(warm_id)
        results["bursts"] = measure_bursts(warm_server, warm_id, warm_arn, BURST)
        results["memory"] = measure_memory(cold_server, cold_id, cold_arn, settings.sessions)
        seconds = results["memory"]["start_seconds"]
        print(f"{settings.sessions} idle sessions started in {seconds:.0f}s; stopping servers", flush=True)
    run_start_paths(settings, results)
    return results


def run_start_paths(settings: argparse.Namespace, results: dict[str, Any]) -> None:
    """Fresh vs fork on two servers with the same sandbox, started for this: first byte, then memory."""
    sandbox = ("--sandbox", settings.start_sandbox, "--session-start")
    results["start_sandbox"] = settings.start_sandbox
    with (
        running_server(warm_pool=0, options=(*sandbox, "fresh")) as fresh_server,
        running_server(warm_pool=0, options=(*sandbox, "fork")) as fork_server,
    ):
        fresh = (fresh_server, *fresh_server.deploy(AGENT, "hello_fresh"))
        fork = (fork_server, *fork_server.deploy(AGENT, "hello_fork"))
        first_byte_ms(fresh_server, fresh[2])  # the first start probes the interpreter once; not a sample
        results["start_paths"] = measure_start_paths(fresh, fork, settings.rounds * settings.starts * 2)
        print("fresh vs fork first bytes done; idle sessions next", flush=True)
        results["memory_fresh"] = measure_memory(*fresh, settings.sessions)
        results["memory_fork"] = measure_memory(*fork, settings.sessions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--sessions", type=int, default=60, help="idle sessions for the memory figure (default 60)"
    )
    parser.add_argument("--quick", action="store_true", help="one short round, for a smoke check")
    parser.add_argument(
        "--start-sandbox", choices=["bwrap", "none"], default="bwrap",
        help="the sandbox of the fresh-vs-fork servers (default bwrap: every protection on)",
    )  # fmt: skip
    settings = parser.parse_args(argv)
    settings.pairs, settings.starts = 400, 3
    if settings.quick:
        settings.rounds, settings.pairs, settings.starts, settings.sessions = 1, 100, 2, 4
    os.sched_setaffinity(0, {int(load.LOAD_CORE)})  # this process drives load: keep it off the servers' core
    started = time.perf_counter()
    results = run(settings)
    results["settings"] = {k: v for k, v in vars(settings).items()}
    table, _ = render(results)
    print(table)
    print(f"runtime-server benchmark took {time.perf_counter() - started:.0f}s")
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"server-{stamp}.md").write_text(table)
    (RESULTS / f"server-{stamp}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
