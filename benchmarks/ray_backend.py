"""The Ray backend's costs beside the process backend's, on one machine (`--ray-address local`).

For each backend, two `agentcore server run` processes host the hello agent, one with a warm pool
of 1 and one without, with small session limits (0.25 CPU, 256 MiB) so that Ray can place a warm
worker and a session side by side on this machine. Measured, in turns:

- new session to first byte, warm and cold (as `server_bench.py` measures it);
- a live session's invocation through the server (SigV4, one kept-alive connection): the Ray
  backend's worker is reached over TCP with its secret, the process backend's over a unix socket.

    .venv/bin/python benchmarks/ray_backend.py --samples 10 --invocations 200
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx

from runtime_server import (
    RuntimeServer,
    _cmdline,
    invocation_headers,
    invocation_path,
    new_session_id,
    process_tree,
    running_server,
    wait_for,
)
from server_bench import AGENT, PAYLOAD, first_byte_ms, measure_new_sessions, quantile

LIMITS = ("--session-cpus", "0.25", "--session-memory", "256M")
BACKENDS = {"process": (), "ray": ("--backend", "ray", "--ray-address", "local")}


@contextlib.contextmanager
def servers(backend: str) -> Iterator[tuple[tuple[RuntimeServer, str, str], tuple[RuntimeServer, str, str]]]:
    """A warm-pool server and a cold one on `backend`, the hello agent deployed on each."""
    flags = (*LIMITS, *BACKENDS[backend])
    with (
        running_server(1, timeout=180, options=flags) as warm,
        running_server(0, timeout=180, options=flags) as cold,
    ):
        warm_id, warm_arn = warm.deploy(AGENT, f"bench_{backend}_warm")
        cold_id, cold_arn = cold.deploy(AGENT, f"bench_{backend}_cold")
        yield (warm, warm_id, warm_arn), (cold, cold_id, cold_arn)


def _worker_roots(server: RuntimeServer) -> set[int]:
    """The outermost process of each worker in the server's tree (a local Ray's raylet, and with it
    its actors and their workers, are the server's descendants)."""
    roots: set[int] = set()
    for pid in process_tree(server.pid):
        if b"worker_main.py" in _cmdline(pid):
            parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            if b"worker_main.py" not in _cmdline(int(parent)):
                roots.add(pid)
    return roots


def _listening_ports(pids: list[int]) -> list[int]:
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    inodes.add(os.readlink(fd))
    ports = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and f"socket:[{fields[9]}]" in inodes:
            ports.append(int(fields[1].split(":")[1], 16))
    return ports


def _serving(port: int) -> bool:
    """A Ray worker serves once its app is imported; until it has a secret we answer 403, the
    answer of a serving worker to a request without its secret."""
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 403
    return False


def ray_warm_pool_ready(server: RuntimeServer, runtime_id: str) -> bool:
    """True once a spare worker (one no session holds) serves."""
    in_sessions = {session["pid"] for session in server.sessions(runtime_id)}
    spare = _worker_roots(server) - in_sessions
    return bool(spare) and all(
        any(_serving(port) for port in _listening_ports(process_tree(root))) for root in spare
    )


def measure_ray_new_sessions(
    warm: tuple[RuntimeServer, str, str], cold: tuple[RuntimeServer, str, str], samples: int
) -> dict[str, list[float]]:
    """As `server_bench.measure_new_sessions`, knowing that Ray's workers listen on TCP."""
    warm_server, warm_id, warm_arn = warm
    cold_server, _, cold_arn = cold
    out: dict[str, list[float]] = {"warm_ms": [], "cold_ms": []}

    def refilled() -> None:
        wait_for(lambda: ray_warm_pool_ready(warm_server, warm_id), 120, "the warm pool to refill", 0.05)

    for _ in range(samples):
        refilled()
        out["warm_ms"].append(first_byte_ms(warm_server, warm_arn))
        refilled()
        out["cold_ms"].append(first_byte_ms(cold_server, cold_arn))
    return out


def invocation_ms(server: RuntimeServer, arn: str, count: int) -> list[float]:
    """Milliseconds per invocation of one live session, on one kept-alive connection."""
    headers = invocation_headers(new_session_id())
    connection = server.connection()
    times = []
    try:
        for index in range(count + 5):
            started = time.perf_counter()
            reply = server.signed("POST", invocation_path(arn), PAYLOAD, headers, connection)
            elapsed = (time.perf_counter() - started) * 1000
            if reply.status != 200:
                raise RuntimeError(f"invocation failed: {reply.status} {reply.body[:300]!r}")
            if index >= 5:  # the first ones start the session and warm the connection
                times.append(elapsed)
        server.signed("POST", invocation_path(arn, "stopruntimesession"), b"{}", headers, connection)
    finally:
        connection.close()
    return times


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 2), "p90": round(quantile(values, 0.9), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10, help="new sessions per kind (default 10)")
    parser.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(BACKENDS))
    parser.add_argument("--invocations", type=int, default=200, help="invocations per backend (default 200)")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for backend in args.backends:
        with servers(backend) as (warm, cold):
            measure = measure_ray_new_sessions if backend == "ray" else measure_new_sessions
            sessions = measure(warm, cold, args.samples)
            results[backend] = {
                "new_session_warm_ms": summary(sessions["warm_ms"]),
                "new_session_cold_ms": summary(sessions["cold_ms"]),
                "invocation_ms": summary(invocation_ms(cold[0], cold[2], args.invocations)),
            }
            print(backend, json.dumps(results[backend]), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
