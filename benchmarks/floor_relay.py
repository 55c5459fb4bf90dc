"""The least a relay written in Python costs: the floor under issue 13's overhead and throughput rows.

    .venv/bin/python benchmarks/floor_relay.py [--pairs 2000] [--rounds 3]     # overhead floor
    .venv/bin/python benchmarks/floor_relay.py --serve PORT                    # the relay alone
    .venv/bin/python benchmarks/throughput.py --floor ...                      # throughput floor

The relay is an asyncio server (on asyncio's own loop, as our server runs) that parses each
request's head with httptools, the C parser uvicorn uses, picks the worker the request's
`X-Floor-Worker-Port` header names, and pipes bytes both ways over one connection to that worker
per client connection. It does nothing else: no authentication, no routing table, no sessions,
no store, no tracing, no metrics, no header filtering, no re-framing of the answer. Whatever
our server costs above this is the price of what it does; whatever this costs is the price of
relaying in Python at all, which only a relay outside the interpreter would lower.

Overhead (this script): one worker of the hello agent (`worker_main.py`, as `throughput.py`'s
direct workers run) is invoked over keep-alive connections directly and through the relay, in
interleaved pairs, serially; the rows are the medians over rounds of p50/p99 through the relay
minus direct, as `server_bench.py` computes the server's overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

WORKER_HEADER = b"x-floor-worker-port"


# The relay -----------------------------------------------------------------------------------


class _Upstream(asyncio.Protocol):
    """The connection to the worker: whatever it sends goes to the client as it comes."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Client(asyncio.Protocol):
    """A client connection: request heads parsed for the worker's port, bytes passed on as they are."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.port: int | None = None
        self.upstream: _Upstream | None = None
        self.waiting: list[bytes] = []  # what came before the worker's connection was ready
        self.ready = False
        self.connecting: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.port is None and name.lower() == WORKER_HEADER:
            self.port = int(value)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)
        if self.ready:
            self.upstream.transport.write(data)  # type: ignore[union-attr]
            return
        self.waiting.append(data)
        if self.port is not None and self.upstream is None:
            self.connecting = asyncio.ensure_future(self._connect(self.port))

    async def _connect(self, port: int) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.upstream = _Upstream(self.transport)
        transport, _ = await loop.create_connection(lambda: self.upstream, "127.0.0.1", port)  # type: ignore[arg-type, return-value]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(b"".join(self.waiting))
        self.waiting, self.ready = [], True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


def serve(port: int) -> None:
    """Run the relay on 127.0.0.1:`port` until killed."""

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Client, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def running_relay(cores: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The relay in its own process (this interpreter) on `cores`, once it accepts connections."""
    from servers import free_port

    port = free_port()
    command = ["taskset", "-c", cores, sys.executable, __file__, "--serve", str(port)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the floor relay did not start")
            time.sleep(0.05)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# Overhead ------------------------------------------------------------------------------------


def _request(body: bytes, worker_port: int) -> bytes:
    head = (
        "POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id: floor-{'0' * 30}\r\n"
        f"X-Floor-Worker-Port: {worker_port}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _exchange(connection: socket.socket, request: bytes) -> float:
    """Seconds from sending `request` to the last byte of its answer (Content-Length framed)."""
    started = time.perf_counter()
    connection.sendall(request)
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    elapsed = time.perf_counter() - started
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the worker answered {head[:60]!r}")
    return elapsed


def measure_overhead(pairs: int, cores: str) -> dict[str, float]:
    """p50/p99 (ms) direct and through the relay, and their differences, from interleaved pairs."""
    from throughput import PAYLOAD, direct_contender

    here = Path(__file__).resolve().parent.parent
    with direct_contender(here, 1, cores) as direct, running_relay(cores) as (relay_port, _):
        worker_port = direct.ports[0]
        request = _request(PAYLOAD, worker_port)
        straight = socket.create_connection(("127.0.0.1", worker_port))
        relayed = socket.create_connection(("127.0.0.1", relay_port))
        for connection in (straight, relayed):
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        direct_s: list[float] = []
        relay_s: list[float] = []
        try:
            for _ in range(50):  # both paths warm
                _exchange(straight, request)
                _exchange(relayed, request)
            for number in range(pairs):
                if number % 2:
                    direct_s.append(_exchange(straight, request))
                    relay_s.append(_exchange(relayed, request))
                else:
                    relay_s.append(_exchange(relayed, request))
                    direct_s.append(_exchange(straight, request))
        finally:
            straight.close()
            relayed.close()

    def quantile(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000

    return {
        "direct_p50_ms": quantile(direct_s, 0.5),
        "direct_p99_ms": quantile(direct_s, 0.99),
        "relay_p50_ms": quantile(relay_s, 0.5),
        "relay_p99_ms": quantile(relay_s, 0.99),
        "overhead_p50_ms": quantile(relay_s, 0.5) - quantile(direct_s, 0.5),
        "overhead_p99_ms": quantile(relay_s, 0.99) - quantile(direct_s, 0.99),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=int, metavar="PORT", help="run the relay alone on 127.0.0.1:PORT")
    parser.add_argument("--pairs", type=int, default=2000, help="interleaved pairs per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--cores", default="0", help="taskset cores of the worker and the relay (default 0)")
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    if args.pairs < 100 or args.rounds < 1:
        parser.error("--pairs must be at least 100 and --rounds at least 1")
    rounds = []
    for number in range(args.rounds):
        rounds.append(measure_overhead(args.pairs, args.cores))
        print(f"round {number + 1}/{args.rounds}: {rounds[-1]}", file=sys.stderr, flush=True)
    print(f"Floor relay overhead, {args.rounds} round(s) of {args.pairs} interleaved pairs, medians; "
          f"load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| figure | p50 (ms) | p99 (ms) |\n|---|---:|---:|")
    for name in ("direct", "relay", "overhead"):
        p50 = statistics.median(one[f"{name}_p50_ms"] for one in rounds)
        p99 = statistics.median(one[f"{name}_p99_ms"] for one in rounds)
        print(f"| {name} | {p50:.3f} | {p99:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
