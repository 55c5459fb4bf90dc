"""SSE relay throughput through the runtime server: frames per second of long streamed answers.

    .venv/bin/python benchmarks/stream_relay.py [--frames 20000] [--rounds 5] [--concurrent 4]

Runs the checkout of the interpreter it is started with (`agentcore server run` from that
interpreter), so the same script measures another checkout when started with its `.venv`'s
python: `/other/checkout/.venv/bin/python benchmarks/stream_relay.py`. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime_server import exchange, invocation_headers, invocation_path, new_session_id, running_server
from servers import AGENTS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20000, help="frames per streamed answer")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--concurrent", type=int, default=4, help="streams at once, one session each")
    args = parser.parse_args()
    body = json.dumps({"count": args.frames}).encode()
    with running_server(warm_pool=0) as server:
        _, arn = server.deploy(AGENTS / "stream_async.py", "streams")
        sessions = [new_session_id() for _ in range(args.concurrent)]

        def one(session: str) -> int:
            path = invocation_path(arn)
            headers = server.signer.headers("POST", path, body, invocation_headers(session))
            connection = server.connection()
            try:
                reply = exchange(connection, "POST", path, body, headers)
            finally:
                connection.close()
            assert reply.status == 200, reply.body[:300]
            return reply.body.count(b"\n\n")

        with ThreadPoolExecutor(args.concurrent) as pool:
            assert sum(pool.map(one, sessions)) == args.frames * args.concurrent  # warm-up
            rates = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                frames = sum(pool.map(one, sessions))
                rates.append(frames / (time.perf_counter() - started))
    print(json.dumps({"frames_per_s": statistics.median(rates), "rounds": [round(r) for r in rates]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
