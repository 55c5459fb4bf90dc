"""Load generators, pinned to core 1: wrk for request rates, asyncio clients for streams and pings."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

LOAD_CORE = "1"

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"name": "bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"] = "bench-session"
"""


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian's packages when missing (needs root)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: installing Debian's wrk package...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "wrk"], check=True, env={"DEBIAN_FRONTEND": "noninteractive"}
    )
    return shutil.which("wrk") or "wrk"


def requests_per_second(url: str, seconds: float, connections: int = 32) -> float:
    """wrk's Requests/sec for POST /invocations with a small JSON body; non-2xx answers fail the run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    try:
        duration = f"-d{max(1, round(seconds))}s"
        done = subprocess.run(
            ["taskset", "-c", LOAD_CORE, ensure_wrk(), "-t1", f"-c{connections}", duration,
             "-s", script.name, f"{url}/invocations"],
            capture_output=True, text=True, check=True, timeout=seconds + 30,
        )  # fmt: skip
    finally:
        Path(script.name).unlink()
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"wrk saw errors:\n{done.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{done.stdout}")
    return float(match.group(1))


async def _one_stream(port: int, count: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"count": count}).encode()
    writer.write(
        b"POST /invocations HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    frames = 0
    tail = b""
    while chunk := await reader.read(65536):
        data = tail + chunk
        frames += data.count(b"data: ") - tail.count(b"data: ")
        tail = data[-8:]
    writer.close()
    return frames


def stream_frames_per_second(port: int, streams: int, frames_per_stream: int, rounds: int) -> float:
    """Frames/s over `streams` concurrent SSE invocations, each reading `frames_per_stream` frames."""

    async def run() -> tuple[int, float]:
        started = time.perf_counter()
        total = 0
        for _ in range(rounds):
            counts = await asyncio.gather(*(_one_stream(port, frames_per_stream) for _ in range(streams)))
            if any(c != frames_per_stream for c in counts):
                raise RuntimeError(f"streams ended early: {counts}")
            total += sum(counts)
        return total, time.perf_counter() - started

    total, elapsed = asyncio.run(run())
    return total / elapsed


async def _timed_stream(port: int, count: int) -> tuple[float, int]:
    """One SSE invocation: seconds from sending the request to the first frame, and frames read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"count": count}).encode()
    started = time.perf_counter()
    writer.write(
        b"POST /invocations HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    first: float | None = None
    frames = 0
    tail = b""
    while chunk := await reader.read(65536):
        data = tail + chunk
        frames += data.count(b"data: ") - tail.count(b"data: ")
        if first is None and frames:
            first = time.perf_counter() - started
        tail = data[-8:]
    writer.close()
    if first is None:
        raise RuntimeError("a stream ended without a frame")
    return first, frames


def stream_first_chunk(port: int, streams: int, frames_per_stream: int, per_client: int) -> dict[str, float]:
    """`streams` clients, each opening `per_client` SSE invocations one after another, so that new
    streams keep starting while the others are mid-stream: first-frame p50/p99 (ms) and frames/s."""

    async def client() -> list[tuple[float, int]]:
        return [await _timed_stream(port, frames_per_stream) for _ in range(per_client)]

    async def run() -> tuple[list[tuple[float, int]], float]:
        started = time.perf_counter()
        results = await asyncio.gather(*(client() for _ in range(streams)))
        return [one for each in results for one in each], time.perf_counter() - started

    samples, elapsed = asyncio.run(run())
    if any(frames != frames_per_stream for _, frames in samples):
        raise RuntimeError(f"streams ended early: {[frames for _, frames in samples]}")
    firsts = sorted(first * 1000 for first, _ in samples)
    return {
        "first_p50_ms": firsts[len(firsts) // 2],
        "first_p99_ms": firsts[min(len(firsts) - 1, int(len(firsts) * 0.99))],
        "frames_per_s": sum(frames for _, frames in samples) / elapsed,
    }


def _post(port: int, payload: dict[str, object], timeout: float = 60) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("POST", "/invocations", json.dumps(payload), {"Content-Type": "application/json"})
    status = connection.getresponse().status
    connection.close()
    return status


def ping_p99_while_blocked(port: int, blockers: int, block_seconds: float, samples: int) -> float:
    """p99 of `/ping` latency (ms) sampled while `blockers` invocations block their threads."""
    threads = [
        threading.Thread(target=_post, args=(port, {"sleep": block_seconds}), daemon=True)
        for _ in range(blockers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # not synchronisation: lets the blockers reach their sleep before sampling starts
    latencies = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=block_seconds + 10)
    for _ in range(samples):
        started = time.perf_counter()
        connection.request("GET", "/ping")
        connection.getresponse().read()
        latencies.append((time.perf_counter() - started) * 1000)
    connection.close()
    for thread in threads:
        thread.join(block_seconds + 30)
    latencies.sort()
    return latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]


def concurrent_block_wall_time(port: int, handlers: int, block_seconds: float) -> float:
    """Seconds until `handlers` concurrent invocations that each block `block_seconds` all finish."""
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(_post(port, {"sleep": block_seconds})))
        for _ in range(handlers)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(block_seconds * handlers + 30)
    elapsed = time.perf_counter() - started
    if statuses != [200] * handlers:
        raise RuntimeError(f"blocking invocations failed: {statuses}")
    return elapsed
