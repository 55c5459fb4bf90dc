"""Throughput through the runtime server against the same load sent straight to the workers.

    .venv/bin/python benchmarks/throughput.py [--sessions 1,16,64] [--seconds 5] [--rounds 3]
                                              [--connections 1] [--baseline DIR] [--quick]

For each session count N, the same closed-loop load runs three (or, with `--baseline`, four) ways,
interleaved in every round:

- server: N sessions of the hello agent on an `agentcore server run` of this checkout (warm pool
  0, fresh data dir), each session driven by its own `wrk` process with `--connections`
  keep-alive connections sending InvokeAgentRuntime requests;
- direct: N copies of the same agent, served by the same `worker_main.py` and interpreter the
  server's workers use, one process per session on its own loopback TCP port, each driven by its
  own `wrk` the same way (POST /invocations);
- baseline (with `--baseline DIR`): as "server", on DIR's own server (DIR/.venv/bin/python);
- floor (with `--floor`): the direct workers behind `floor_relay.py`, a relay in Python that
  does nothing but parse request heads and pipe bytes (no authentication, sessions, tracing or
  metrics): what relaying in Python costs at the least, beside what the server costs.

Requests through a server are signed once per run with SigV4 in their headers and replayed: a
header signature stays valid for the server's five minutes of clock skew, and nothing in SigV4
makes a request single-use, so wrk sends pre-signed requests at full speed from a Lua script.
Servers, their workers and the direct workers run on core 0; every wrk runs on core 1 (`--cores`
changes this). Each wrk reports its request count and a grid of latency quantiles; the rows add
the rates and merge the quantile grids weighted by each process's request count.

Importable: `measure(settings) -> dict` runs everything and returns the JSON document written to
`benchmarks/results/throughput-*.json`; `render(result) -> str` is its markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import ensure_wrk
from runtime_server import (
    RuntimeServer,
    invocation_headers,
    invocation_path,
    new_session_id,
    running_server,
    wait_for,
)
from servers import AGENTS, free_port

HERE = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
AGENT = AGENTS / "hello_sync.py"
PAYLOAD = json.dumps({"name": "bench"}).encode()
WORKER_MAIN = Path("src") / "open_agentcore" / "backends" / "worker_main.py"
TARGET_RATIO = 0.70
_GRID = [step / 10 for step in range(1, 1000)]  # latency quantiles each wrk reports, in percent


@dataclass(frozen=True)
class Settings:
    """What to measure; `baseline` is another checkout with its own `.venv`, or None."""

    sessions: tuple[int, ...] = (1, 16, 64)
    seconds: float = 5.0
    rounds: int = 3
    connections: int = 1
    baseline: Path | None = None
    server_cores: str = "0"
    load_cores: str = "1"
    server_options: tuple[str, ...] = ()  # passed to `agentcore server run` of this checkout
    floor: bool = False  # also measure the direct workers behind `floor_relay.py`


@dataclass(frozen=True)
class Load:
    """One wrk run's outcome, summed over its processes."""

    requests: int
    rate: float  # invocations per second, all processes together
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_us: float | None = None  # the server process's CPU time (all threads) per invocation
    worker_cpu_us: float | None = None  # the agents' processes' CPU time (all of them) per invocation


# wrk ---------------------------------------------------------------------------------------


def _lua(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for our ASCII


def wrk_script(path: str, headers: dict[str, str], body: bytes) -> str:
    """A wrk script sending one fixed request, and reporting its counts and latency grid at the end."""
    lines = [f"wrk.method = {_lua('POST')}", f"wrk.path = {_lua(path)}", f"wrk.body = {_lua(body.decode())}"]
    lines += [f"wrk.headers[{_lua(name)}] = {_lua(value)}" for name, value in headers.items()]
    grid = ", ".join(f"{q:g}" for q in _GRID)
    lines += [
        "done = function(summary, latency, requests)",
        "  local e = summary.errors",
        '  io.write(string.format("RESULT %d %d %d %d\\n", summary.requests, summary.duration, e.status,',
        "    e.connect + e.read + e.write + e.timeout))",
        f"  for _, q in ipairs({{{grid}}}) do",
        '    io.write(string.format("Q %d\\n", latency:percentile(q)))',
        "  end",
        "end",
    ]
    return "\n".join(lines) + "\n"


def run_wrk(targets: list[tuple[str, str]], seconds: float, connections: int, cores: str) -> Load:
    """One wrk process per (base URL, script), all at once for `seconds`; their results merged."""
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="oac-wrk-") as scratch:
        processes = []
        for number, (url, script) in enumerate(targets):
            script_path = Path(scratch) / f"s{number}.lua"
            script_path.write_text(script)
            command = [
                "taskset",
                "-c",
                cores,
                wrk,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "30s",
                "-s",
                str(script_path),
                url,
            ]
            processes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + seconds + 120
        try:
            outputs = [
                process.communicate(timeout=max(1.0, deadline - time.monotonic()))[0].decode()
                for process in processes
            ]
        except subprocess.TimeoutExpired:
            raise WrkStalled(f"wrk did not finish within {seconds + 120:g} s (machine overloaded?)") from None
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    return merge([parse_wrk(output) for output in outputs])


class WrkStalled(Exception):
    """A wrk run did not end in time: the run is left out of the results, the others go on."""


def parse_wrk(output: str) -> tuple[int, float, int, list[float]]:
    """(requests, seconds, errors, latency grid in ms) from one wrk run with `wrk_script`'s report."""
    result = [line.split()[1:] for line in output.splitlines() if line.startswith("RESULT ")]
    if not result:
        raise RuntimeError(f"unexpected wrk output:\n{output[-2000:]}")
    requests, duration_us, status_errors, socket_errors = (int(part) for part in result[0])
    grid = [int(line.split()[1]) / 1000 for line in output.splitlines() if line.startswith("Q ")]
    return requests, duration_us / 1e6, status_errors + socket_errors, grid


def merge(runs: list[tuple[int, float, int, list[float]]]) -> Load:
    """Rates add up; quantiles come from every process's grid, each point weighted by its share."""
    weighted: list[tuple[float, float]] = []
    for requests, _, _, grid in runs:
        weighted += [(value, requests / len(grid)) for value in grid if grid]
    weighted.sort()
    total = sum(weight for _, weight in weighted)

    def quantile(q: float) -> float:
        running = 0.0
        for value, weight in weighted:
            running += weight
            if running >= q * total:
                return value
        return weighted[-1][0] if weighted else float("nan")

    return Load(
        requests=sum(run[0] for run in runs),
        rate=sum(run[0] / run[1] for run in runs if run[1] > 0),
        p50_ms=quantile(0.5),
        p99_ms=quantile(0.99),
        errors=sum(run[2] for run in runs),
    )


# CPU time, read from /proc ----------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU time of one process so far, all its threads (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> list[int]:
    """Every process below `root` now (its workers, their sandboxes, fork servers and reapers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, pending = [], [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


# The contenders ------------------------------------------------------------------------------


@dataclass
class ServerContender:
    """A runtime server hosting the hello agent, with sessions whose workers already run."""

    server: RuntimeServer
    arn: str
    session_ids: list[str]

    def cpu_seconds(self) -> float | None:
        """The server process's CPU time so far, all its threads (not its workers')."""
        return process_cpu_seconds(self.server.pid)

    def worker_pids(self) -> list[int]:
        """The processes the server started (workers, sandboxes, fork servers), found anew per run."""
        return descendants(self.server.pid)

    def targets(self, sessions: int) -> list[tuple[str, str]]:
        path = invocation_path(self.arn)
        scripts = []
        for session_id in self.session_ids[:sessions]:
            # Signed now, replayed for the whole run: valid for the server's clock skew of 5 minutes.
            headers = self.server.signer.headers("POST", path, PAYLOAD, invocation_headers(session_id))
            headers["Host"] = f"127.0.0.1:{self.server.port}"
            scripts.append((self.server.url, wrk_script(path, headers, PAYLOAD)))
        return scripts


@contextlib.contextmanager
def server_contender(
    checkout: Path, sessions: int, cores: str, options: tuple[str, ...] = ()
) -> Iterator[ServerContender]:
    """`checkout`'s server (run with `options`) with `sessions` started sessions of the hello agent."""
    python = str(checkout / ".venv" / "bin" / "python")
    with running_server(0, cores=cores, python=python, options=options) as server:
        _, arn = server.deploy(AGENT, f"tp{os.getpid() % 10000}")
        session_ids = [new_session_id() for _ in range(sessions)]
        for session_id in session_ids:
            reply = server.signed("POST", invocation_path(arn), PAYLOAD, invocation_headers(session_id))
            if reply.status != 200:
                raise RuntimeError(f"starting a session failed: {reply.status} {reply.body[:300]!r}")
        yield ServerContender(server, arn, session_ids)


@dataclass
class DirectContender:
    """The hello agent in N processes on loopback TCP ports, as the server's workers serve it."""

    ports: list[int]
    session_ids: list[str]

    processes: list[int]

    def cpu_seconds(self) -> float | None:
        return None  # no server in the way

    def worker_pids(self) -> list[int]:
        return self.processes

    def targets(self, sessions: int) -> list[tuple[str, str]]:
        return [
            (f"http://127.0.0.1:{port}", wrk_script("/invocations", invocation_headers(session_id), PAYLOAD))
            for port, session_id in zip(self.ports[:sessions], self.session_ids, strict=False)
        ]


@contextlib.contextmanager
def direct_contender(checkout: Path, sessions: int, cores: str) -> Iterator[DirectContender]:
    """`sessions` worker processes of `checkout` (its interpreter and `worker_main.py`), stopped on exit."""
    import http.client

    python = str(checkout / ".venv" / "bin" / "python")
    ports = [free_port() for _ in range(sessions)]
    processes: list[subprocess.Popen[bytes]] = []

    def answers(port: int) -> bool:
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                connection.request("GET", "/ping")
                return connection.getresponse().status == 200
            finally:
                connection.close()
        return False

    try:
        for port in ports:
            command = [
                "taskset",
                "-c",
                cores,
                python,
                str(checkout / WORKER_MAIN),
                "--code-dir",
                str(AGENTS),
                "--entrypoint",
                AGENT.name,
                "--port",
                str(port),
            ]
            processes.append(
                subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        # Generous: every worker imports the SDK at once, on one core the others also use.
        deadline = time.monotonic() + 30 + 5 * sessions
        for port, process in zip(ports, processes, strict=True):
            wait_for(
                lambda p=process, n=port: p.poll() is not None or answers(n),
                max(1.0, deadline - time.monotonic()),
                f"worker on port {port} to answer /ping",
            )
            if process.poll() is not None:
                raise RuntimeError(f"a direct worker exited with {process.returncode}")
        pids = [process.pid for process in processes]  # taskset execs the interpreter: the same pid
        yield DirectContender(ports, [new_session_id() for _ in range(sessions)], pids)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@dataclass
class FloorContender:
    """The direct workers behind the floor relay (one relay process, on the workers' cores)."""

    direct: DirectContender
    relay_port: int
    relay_pid: int

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.relay_pid)

    def worker_pids(self) -> list[int]:
        return self.direct.worker_pids()

    def targets(self, sessions: int) -> list[tuple[str, str]]:
        return [
            (
                f"http://127.0.0.1:{self.relay_port}",
                wrk_script(
                    "/invocations",
                    {**invocation_headers(session_id), "X-Floor-Worker-Port": str(port)},
                    PAYLOAD,
                ),
            )
            for port, session_id in zip(self.direct.ports[:sessions], self.direct.session_ids, strict=False)
        ]


# Running it all ------------------------------------------------------------------------------


def measure(settings: Settings) -> dict[str, Any]:
    """Every round of every session count on every contender; the document the JSON file holds."""
    most = max(settings.sessions)
    checkouts = {"server": HERE, "direct": HERE}
    if settings.baseline is not None:
        checkouts["baseline"] = settings.baseline.resolve()
    if settings.floor:
        checkouts["floor"] = HERE
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        str(n): {name: [] for name in checkouts} for n in settings.sessions
    }
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        contenders: dict[str, ServerContender | DirectContender | FloorContender] = {
            "server": stack.enter_context(
                server_contender(HERE, most, settings.server_cores, settings.server_options)
            ),
            "direct": stack.enter_context(direct_contender(HERE, most, settings.server_cores)),
        }
        if settings.baseline is not None:
            contenders["baseline"] = stack.enter_context(
                server_contender(settings.baseline.resolve(), most, settings.server_cores)
            )
        if settings.floor:
            from floor_relay import running_relay

            direct = contenders["direct"]
            assert isinstance(direct, DirectContender)
            port, relay = stack.enter_context(running_relay(settings.server_cores))
            contenders["floor"] = FloorContender(direct, port, relay.pid)
        for number in range(settings.rounds):
            names = list(contenders) if number % 2 == 0 else list(reversed(contenders))
            for sessions in settings.sessions:
                for name in names:
                    contender = contenders[name]
                    targets = contender.targets(sessions)
                    cpu_before = contender.cpu_seconds()
                    workers = contender.worker_pids()
                    workers_before = sum(map(process_cpu_seconds, workers))
                    try:
                        outcome = run_wrk(
                            targets, settings.seconds, settings.connections, settings.load_cores
                        )
                    except WrkStalled as stalled:
                        print(
                            f"{name}, {sessions} sessions: {stalled}; left out", file=sys.stderr, flush=True
                        )
                        runs[str(sessions)][name].append({"failed": str(stalled)})
                        continue
                    if outcome.requests:
                        # Processes that ended during the run lose their share: none should.
                        spent = sum(map(process_cpu_seconds, workers)) - workers_before
                        outcome = replace(outcome, worker_cpu_us=spent / outcome.requests * 1e6)
                    if cpu_before is not None and outcome.requests:
                        spent = (contender.cpu_seconds() or 0.0) - cpu_before
                        outcome = replace(outcome, server_cpu_us=spent / outcome.requests * 1e6)
                    if outcome.errors:
                        raise RuntimeError(
                            f"{name} with {sessions} sessions: {outcome.errors} failed requests"
                        )
                    runs[str(sessions)][name].append(asdict(outcome))
                    cpu = f", server CPU {outcome.server_cpu_us:.0f} µs/call" if outcome.server_cpu_us else ""
                    if outcome.worker_cpu_us is not None:
                        cpu += f", workers' CPU {outcome.worker_cpu_us:.0f} µs/call"
                    line = f"  {sessions} sessions, {name}: {outcome.rate:.0f}/s, p50 {outcome.p50_ms:.2f} ms"
                    print(f"{line}, p99 {outcome.p99_ms:.2f} ms{cpu}", file=sys.stderr, flush=True)
            print(f"round {number + 1}/{settings.rounds} done", file=sys.stderr, flush=True)
    return {
        "benchmark": "throughput",
        "settings": {**asdict(settings), "baseline": str(settings.baseline) if settings.baseline else None},
        "load_average": os.getloadavg(),
        "seconds_taken": time.monotonic() - started,
        "runs": runs,
        "summary": summarise(runs),
    }


_KEYS = ("rate", "p50_ms", "p99_ms", "server_cpu_us", "worker_cpu_us")


def summarise(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """Per session count: medians per contender, and the median of the per-round ratios to direct."""
    summary: dict[str, dict[str, Any]] = {}
    for sessions, by_name in runs.items():
        row: dict[str, Any] = {}
        for name, every in by_name.items():
            outcomes = [o for o in every if "failed" not in o] or [dict.fromkeys(_KEYS, float("nan"))]
            row[name] = {
                key: statistics.median(o[key] for o in outcomes) if outcomes[0][key] is not None else None
                for key in _KEYS
            }
        for name in by_name:
            if name == "direct":
                continue
            pairs = zip(by_name[name], by_name["direct"], strict=True)
            ratios = [o["rate"] / d["rate"] for o, d in pairs if "failed" not in o and d.get("rate")]
            row[name]["ratio_to_direct"] = statistics.median(ratios) if ratios else float("nan")
            row[name]["ratio_rounds"] = ratios
        summary[sessions] = row
    return summary


def render(result: dict[str, Any]) -> str:
    """The markdown table of a `measure` result."""
    settings = result["settings"]
    first = next(iter(result["summary"].values()))
    names = [name for name in ("server", "baseline", "floor", "direct") if name in first]
    loads = ", ".join(f"{load:.1f}" for load in result["load_average"])
    lines = [
        f"Throughput, {settings['rounds']} interleaved round(s) of {settings['seconds']:g} s per run, "
        f"{settings['connections']} connection(s) per session; servers and workers on core(s) "
        f"{settings['server_cores']}, wrk on {settings['load_cores']}; medians; load average at the end "
        f"{loads}",
        "",
        "| sessions | contender | invocations/s | p50 (ms) | p99 (ms) | server CPU per call (µs) "
        "| agents' CPU per call (µs) | / direct (per round) | target |",
        "|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for sessions, row in result["summary"].items():
        for name in names:
            cell = row[name]
            ratio, target = "–", ""
            if "ratio_to_direct" in cell:
                rounds = ", ".join(f"{r:.2f}" for r in cell["ratio_rounds"])
                ratio = f"{cell['ratio_to_direct']:.2f} ({rounds})"
                if sessions == "64" and name == "server":
                    verdict = "pass" if cell["ratio_to_direct"] >= TARGET_RATIO else "MISS"
                    target = f"≥ {TARGET_RATIO:.2f}: {verdict}"
            cpu = f"{cell['server_cpu_us']:,.0f}" if cell["server_cpu_us"] is not None else "–"
            agents = f"{cell['worker_cpu_us']:,.0f}" if cell.get("worker_cpu_us") is not None else "–"
            lines.append(
                f"| {sessions} | {name} | {cell['rate']:,.0f} | {cell['p50_ms']:.2f} | {cell['p99_ms']:.2f} "
                f"| {cpu} | {agents} | {ratio} | {target} |"
            )
    lines += ["", _ceiling(result["summary"])]
    return "\n".join(lines) + "\n"


def _ceiling(summary: dict[str, dict[str, Any]]) -> str:
    """What the CPU figures allow: with server and agents on one core, through/direct can be at most
    the direct agents' CPU per call over the server's plus its agents' (each call costs both)."""
    parts = []
    for sessions, row in summary.items():
        direct, server = row.get("direct", {}), row.get("server", {})
        needed = (server.get("server_cpu_us"), server.get("worker_cpu_us"), direct.get("worker_cpu_us"))
        if any(value is None or value != value for value in needed):
            continue
        own, agents, alone = needed
        ceiling = alone / (own + agents)
        parts.append(f"{sessions} sessions {alone:,.0f} / ({own:,.0f} + {agents:,.0f}) = {ceiling:.2f}")
    if not parts:
        return ""
    heading = "CPU ceiling of server/direct on one core (direct agents' CPU / (server + its agents'))"
    return f"{heading}: {'; '.join(parts)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sessions", default="1,16,64", help="session counts, comma-separated (default 1,16,64)"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--connections", type=int, default=1, help="keep-alive connections per session (default 1)"
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout with its own .venv, measured alongside"
    )
    parser.add_argument(
        "--server-cores", default="0", help="taskset cores of servers and workers (default 0)"
    )
    parser.add_argument("--load-cores", default="1", help="taskset cores of the wrk processes (default 1)")
    parser.add_argument(
        "--server-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="an option for this checkout's `agentcore server run` (repeat it; e.g. "
        "--server-option=--tracing --server-option=off to see what tracing costs)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also drive the direct workers through floor_relay.py (a bare relay in Python: what relaying "
        "alone costs, its CPU in the server column)",
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s runs, as a smoke check")
    parser.add_argument(
        "--json",
        action="store_true",
        help="end with one JSON line of the largest session count's medians: server_rps, direct_rps "
        "(what benchmarks/issue13.py reads)",
    )
    args = parser.parse_args(argv)
    try:
        sessions = tuple(int(part) for part in args.sessions.split(","))
    except ValueError:
        parser.error(f"--sessions must be numbers separated by commas, not {args.sessions!r}")
    if not sessions or min(sessions) < 1 or args.rounds < 1 or args.connections < 1 or args.seconds < 1:
        parser.error("--sessions, --rounds and --connections must be at least 1, --seconds at least 1")
    if args.baseline is not None and not (args.baseline / ".venv" / "bin" / "python").exists():
        parser.error(f"--baseline {args.baseline}: no .venv/bin/python there (make .venv/.installed-dev)")
    settings = Settings(
        sessions=sessions,
        seconds=2.0 if args.quick else args.seconds,
        rounds=1 if args.quick else args.rounds,
        connections=args.connections,
        baseline=args.baseline,
        server_cores=args.server_cores,
        load_cores=args.load_cores,
        server_options=tuple(args.server_option),
        floor=args.floor,
    )
    result = measure(settings)
    table = render(result)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"throughput-{stamp}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"throughput-{stamp}.md").write_text(table)
    if args.json:
        largest = result["summary"][str(max(sessions))]
        print(json.dumps({"server_rps": largest["server"]["rate"], "direct_rps": largest["direct"]["rate"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
