"""Server replicas sharing sessions through the store, beside one server, in one run.

    .venv/bin/python benchmarks/replicas.py [--rows 10000] [--lookups 2000] [--invocations 200]
                                            [--sessions 4] [--seconds 5] [--rounds 3]

Measured, in turns:

- route lookup: one session's record by id (`Store.get_session`, what a replica does for a
  session it holds no entry for) in a table of `--rows` sessions, on SQLite and on PostgreSQL
  (a throwaway server from scripts/postgres-test-server.sh); and the reapers' review query;
- invocation overhead: a live session's invocation on one kept-alive connection through the
  process backend's server, through the Ray replica that started the session, and through the
  other replica, which adopted it from the store (as `ray_backend.py` measures invocations);
- invocations/s: `--sessions` live sessions driven by wrk (one process per session, pre-signed
  requests as `throughput.py` sends them), all through replica 1, then split over both.

The Ray cluster is `ray.cluster_utils.Cluster` on loopback (one node, 4 logical CPUs), sessions
asking 0.25 CPU and 256 MiB; both replicas share one PostgreSQL store. Servers run on core 0 (as
in the other benchmarks) until the throughput turns, when replica 2 moves to core 1; wrk and the
workers run on any core. Medians and ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import io
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import update

from open_agentcore.store import Store
from open_agentcore.store.records import SessionState
from open_agentcore.store.tables import RuntimeSession
from runtime_server import RuntimeServer, invocation_headers, invocation_path, new_session_id, running_server
from throughput import AGENT, PAYLOAD, run_wrk, wrk_script

REPO = Path(__file__).resolve().parent.parent
POSTGRES = REPO / "scripts" / "postgres-test-server.sh"
LIMITS = ("--session-cpus", "0.25", "--session-memory", "256M")
CONFIG = {"agentRuntimeArtifact": {}, "lifecycleConfiguration": {}}


# Route lookups -----------------------------------------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server and a fresh database on it: its URL."""
    import psycopg

    directory = Path(tempfile.mkdtemp(prefix="agentcore-bench-pg-"))
    started = subprocess.run(
        [str(POSTGRES), "start", str(directory)], capture_output=True, text=True, timeout=300
    )
    if started.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start:\n{started.stderr}")
    server = started.stdout.strip().splitlines()[-1]
    name = f"bench_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")  # a name of ours, not input
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        subprocess.run([str(POSTGRES), "stop", str(directory)], capture_output=True, timeout=90)
        shutil.rmtree(directory, ignore_errors=True)


def fill(store: Store, rows: int) -> tuple[str, list[str]]:
    """A runtime with `rows` ACTIVE sessions recorded as replicas record Ray sessions."""
    runtime_id = store.create_runtime("bench", "us-east-1", "000000000000", CONFIG)[0].id
    now = datetime.datetime.now(datetime.timezone.utc)
    ids = [f"session-{index:06d}-{secrets.token_hex(8)}" for index in range(rows)]
    worker = {"workerId": "w0", "actor": "r0.w0", "host": "10.0.0.1", "port": 40000, "secret": "x" * 43,
              "node": "n" * 56, "replica": "r0", "idleTimeout": 900.0, "maxLifetime": 28800.0}  # fmt: skip
    common = {"runtime_id": runtime_id, "endpoint": None, "version": 1, "state": SessionState.ACTIVE,
              "backend": "ray", "created_at": now, "last_activity_at": now, "ended_at": None,
              "end_reason": None, "owner": "key:bench"}  # fmt: skip
    values = [
        {**common, "session_id": session_id, "worker": {**worker, "workerId": f"w{index}"}}
        for index, session_id in enumerate(ids)
    ]
    with store.engine.begin() as connection:
        for start in range(0, rows, 1000):
            connection.execute(RuntimeSession.__table__.insert(), values[start : start + 1000])  # type: ignore[attr-defined]
    return runtime_id, ids


def timed(call: Callable[[], object], count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def lookups(url: str, rows: int, count: int) -> dict[str, float]:
    store = Store.open(url)
    try:
        runtime_id, ids = fill(store, rows)
        picks = [random.choice(ids) for _ in range(count)]
        timed(lambda: store.get_session(runtime_id, picks[0]), 50)  # connections pooled, plans cached
        chosen = iter(picks)
        lookup = timed(lambda: store.get_session(runtime_id, next(chosen)), count)
        before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=60)
        review_none = timed(lambda: store.sessions_to_review("ray", before), 20)
        # The worst case: every session idle past the shortest timeout, each pass reads them all.
        with store.engine.begin() as connection:
            connection.execute(
                update(RuntimeSession).values(last_activity_at=before - datetime.timedelta(hours=1))
            )
        review_all = timed(lambda: store.sessions_to_review("ray", before), 20)
    finally:
        store.close()
    return {
        "lookup_p50_ms": _round(statistics.median(lookup)),
        "lookup_p90_ms": _round(_quantile(lookup, 0.9)),
        "review_none_idle_p50_ms": _round(statistics.median(review_none)),
        "review_all_idle_p50_ms": _round(statistics.median(review_all)),
    }


# Replicas ----------------------------------------------------------------------------------


@contextlib.contextmanager
def ray_cluster() -> Iterator[str]:
    """One Ray node on loopback, no dashboard, no usage statistics: its address."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="oarb-", dir="/tmp")
    # Cluster writes the head's address into Ray's default temp dir, which may not exist yet.
    from ray._common.utils import get_default_ray_temp_dir

    Path(get_default_ray_temp_dir()).mkdir(parents=True, exist_ok=True)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 4, "memory": 2 * 1024**3, "node_ip_address": "127.0.0.1",
            "object_store_memory": 80 * 1024**2, "include_dashboard": False, "temp_dir": temp_dir,
        },
    )  # fmt: skip
    try:
        yield str(cluster.address)
    finally:
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(AGENT.name, date_time=(2026, 1, 1, 0, 0, 0)), AGENT.read_text())
    return buffer.getvalue()


def deploy(servers: list[RuntimeServer], name: str) -> str:
    """The hello agent's runtime, created through the first server; the same artifact is uploaded
    to every one (until artifacts live in the shared store); returns its ARN."""
    keys = set()
    for server in servers:
        uploaded = server.signed("PUT", "/_agentcore/artifacts", _archive())
        keys.add(json.loads(uploaded.body)["key"])
    (key,) = keys
    control = servers[0].control()
    created = control.create_agent_runtime(
        agentRuntimeName=name, roleArn="arn:aws:iam::000000000000:role/bench",
        agentRuntimeArtifact={"codeConfiguration": {
            "code": {"s3": {"bucket": "agentcore-artifacts", "prefix": key}}, "runtime": "PYTHON_3_11",
            "entryPoint": [AGENT.name]}},
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while control.get_agent_runtime(agentRuntimeId=created["agentRuntimeId"])["status"] != "READY":
        if time.monotonic() > deadline:
            raise RuntimeError("the runtime did not become READY")
        time.sleep(0.1)
    return str(created["agentRuntimeArn"])


class Invoker:
    """One live session called through one server on a kept-alive connection, timed per call."""

    def __init__(self, starter: RuntimeServer, through: RuntimeServer, arn: str) -> None:
        self.through, self.arn = through, arn
        self.headers = invocation_headers(new_session_id())
        # Started through `starter`: through another server, the session is adopted.
        if starter.signed("POST", invocation_path(arn), PAYLOAD, self.headers).status != 200:
            raise RuntimeError("starting the session failed")
        self.connection = through.connection()
        self.times: list[float] = []
        self.call(warm_up=5)

    def call(self, count: int = 1, warm_up: int = 0) -> None:
        path = invocation_path(self.arn)
        for _ in range(warm_up or count):
            started = time.perf_counter()
            try:
                reply = self.through.signed("POST", path, PAYLOAD, self.headers, self.connection)
                counted = not warm_up
            except (OSError, http.client.HTTPException):
                # The server closed the kept-alive connection while other paths had their turn
                # (uvicorn's keep-alive timeout): reconnect; this one call is not timed.
                self.connection.close()
                self.connection = self.through.connection()
                reply = self.through.signed("POST", path, PAYLOAD, self.headers, self.connection)
                counted = False
            elapsed = (time.perf_counter() - started) * 1000
            if reply.status != 200:
                raise RuntimeError(f"invocation failed: {reply.status} {reply.body[:300]!r}")
            if counted:
                self.times.append(elapsed)

    def close(self) -> None:
        path = invocation_path(self.arn, "stopruntimesession")
        self.through.signed("POST", path, b"{}", self.headers, self.connection)
        self.connection.close()


def invocations(invokers: dict[str, Invoker], count: int, batch: int = 10) -> dict[str, list[float]]:
    """`count` timed calls per invoker, in interleaved batches, so drift in the machine's load
    hits every path alike."""
    for _ in range(max(1, count // batch)):
        for invoker in invokers.values():
            invoker.call(batch)
    for invoker in invokers.values():
        invoker.close()
    return {name: invoker.times for name, invoker in invokers.items()}


def throughput(
    servers: list[RuntimeServer], arn: str, sessions: int, seconds: float, rounds: int
) -> dict[str, Any]:
    """Invocations/s of `sessions` live sessions, all through the first server, then over all."""
    ids = [new_session_id() for _ in range(sessions)]
    for session_id in ids:
        if (
            servers[0].signed("POST", invocation_path(arn), PAYLOAD, invocation_headers(session_id)).status
            != 200
        ):
            raise RuntimeError("starting a session failed")
    path = invocation_path(arn)

    def targets(through: list[RuntimeServer]) -> list[tuple[str, str]]:
        scripts = []
        for index, session_id in enumerate(ids):
            server = through[index % len(through)]
            headers = server.signer.headers("POST", path, PAYLOAD, invocation_headers(session_id))
            headers["Host"] = f"127.0.0.1:{server.port}"
            scripts.append((server.url, wrk_script(path, headers, PAYLOAD)))
        return scripts

    rates: dict[str, list[float]] = {"one_replica": [], "two_replicas": []}
    for _ in range(rounds):  # interleaved, so drift in the machine's load hits both alike
        rates["one_replica"].append(run_wrk(targets(servers[:1]), seconds, 1, "0-1").rate)
        rates["two_replicas"].append(run_wrk(targets(servers), seconds, 1, "0-1").rate)
    for session_id in ids:
        servers[0].signed(
            "POST", invocation_path(arn, "stopruntimesession"), b"{}", invocation_headers(session_id)
        )
    one, two = statistics.median(rates["one_replica"]), statistics.median(rates["two_replicas"])
    return {
        "one_replica_per_s": round(one, 1),
        "two_replicas_per_s": round(two, 1),
        "ratio": round(two / one, 2),
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": _round(statistics.median(values)), "p90": _round(_quantile(values, 0.9))}


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _round(value: float) -> float:
    return round(value, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="session rows in the table (default 10000)")
    parser.add_argument("--lookups", type=int, default=2000, help="lookups timed per store (default 2000)")
    parser.add_argument("--invocations", type=int, default=200, help="invocations per path (default 200)")
    parser.add_argument("--sessions", type=int, default=4, help="sessions under wrk (default 4)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds, interleaved (default 3)")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "load": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start"
    }
    with tempfile.TemporaryDirectory(prefix="oac-bench-store-") as scratch, postgres() as pg_url:
        sqlite = lookups(f"sqlite:///{scratch}/state.db", args.rows, args.lookups)
        postgresql = lookups(pg_url, args.rows, args.lookups)
    result["route_lookup"] = {"rows": args.rows, "sqlite": sqlite, "postgresql": postgresql}
    print("route lookup", json.dumps(result["route_lookup"]), file=sys.stderr, flush=True)
    with postgres() as pg_url, ray_cluster() as address:
        ray = ("--backend", "ray", "--ray-address", address, "--store", pg_url, *LIMITS)
        with (
            running_server(0, timeout=180, options=LIMITS) as process_server,
            running_server(0, timeout=180, options=ray) as one,
            running_server(0, timeout=180, options=ray) as two,
        ):
            process_arn = deploy([process_server], "bench_process")
            arn = deploy([one, two], "bench_replicas")
            timed_calls = invocations(
                {"process": Invoker(process_server, process_server, process_arn),
                 "starter": Invoker(one, one, arn), "adopted": Invoker(one, two, arn)},
                args.invocations,
            )  # fmt: skip
            process, started_here, adopted = (timed_calls[k] for k in ("process", "starter", "adopted"))
            p50 = statistics.median(process)
            result["invocation_ms"] = {
                "process_backend": summary(process),
                "ray_replica_that_started_it": summary(started_here),
                "ray_other_replica_adopted": summary(adopted),
                "ratio_adopted_vs_process_p50": round(statistics.median(adopted) / p50, 2),
                "ratio_adopted_vs_starter_p50": round(
                    statistics.median(adopted) / statistics.median(started_here), 2
                ),
            }
            print("invocation", json.dumps(result["invocation_ms"]), file=sys.stderr, flush=True)
            # Every server so far on core 0, as the other benchmarks pin them; for one replica
            # against two, the second gets the other core (all its threads).
            subprocess.run(["taskset", "-a", "-p", "-c", "1", str(two.pid)], check=True, capture_output=True)
            result["throughput"] = throughput([one, two], arn, args.sessions, args.seconds, args.rounds)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
