"""Artifacts in the shared store, side by side in one run: medians over interleaved rounds.

1. Uploading a 50 MiB artifact: a baseline tree (the code before artifacts were kept in the store;
   it keeps them in its data dir) against this tree on SQLite (directory only, as before) and on
   PostgreSQL (streamed into chunk rows as well).
2. A new session's first answer on a server that must fetch the artifact from the store and build
   the version's environment on first use (the version was built by another server on the same
   PostgreSQL store), against the server that built it, and against a second session on the
   server that just built it on first use.

    .venv/bin/python benchmarks/shared_artifacts.py [--baseline-src DIR] [--rounds 3]

`--baseline-src` is a tree's `src/` (default: main at the branch point, exported with `git archive`
into a temporary directory), run with this tree's interpreter. Every server is `agentcore server
run` in its own process with its own data dir; PostgreSQL is scripts/postgres-test-server.sh's.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import httpx
import psycopg
from psycopg import sql

REPOSITORY = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "d644961"
KEY_ID, SECRET = "AKIABENCHADMIN000001", "bench-secret-for-a-loopback-server-only"
MIB = 1024 * 1024
AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp
import six

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"six": six.__version__}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(src: Path | None, store: str | None) -> Iterator[str]:
    """`agentcore server run` from `src` (None: this tree) on a fresh data dir; yields its URL."""
    home = Path(tempfile.mkdtemp(prefix="oacsa-", dir="/tmp"))
    port = free_port()
    environment = {
        **os.environ,
        "AGENTCORE_HOME": str(home),
        "AGENTCORE_ADMIN_ACCESS_KEY_ID": KEY_ID,
        "AGENTCORE_ADMIN_SECRET_ACCESS_KEY": SECRET,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if src is not None:
        environment["PYTHONPATH"] = str(src)
    command = [sys.executable, "-m", "open_agentcore.cli", "server", "run", "--port", str(port),
               "--data-dir", str(home / "server"), "--warm-pool", "0", "--log-level", "warning",
               *(["--store", store] if store else [])]  # fmt: skip
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError((home / "server.log").read_text())
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/_agentcore/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 60 s")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def signed_put(url: str, body: bytes) -> httpx.Response:
    request = botocore.awsrequest.AWSRequest(method="PUT", url=url, data=body)
    credentials = botocore.credentials.Credentials(KEY_ID, SECRET)
    botocore.auth.SigV4Auth(credentials, "bedrock-agentcore", "us-east-1").add_auth(request)
    return httpx.put(url, content=body, headers=dict(request.headers), timeout=600)


def clients(url: str) -> tuple[Any, Any]:
    settings: dict[str, Any] = {
        "region_name": "us-east-1",
        "endpoint_url": url,
        "aws_access_key_id": KEY_ID,
        "aws_secret_access_key": SECRET,
        "config": botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=900),
    }
    return boto3.client("bedrock-agentcore-control", **settings), boto3.client(
        "bedrock-agentcore", **settings
    )


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def upload_seconds(url: str, body: bytes) -> float:
    began = time.perf_counter()
    reply = signed_put(url + "/_agentcore/artifacts", body)
    elapsed = time.perf_counter() - began
    assert reply.status_code == 200, reply.text
    assert reply.json()["key"] == hashlib.sha256(body).hexdigest() + ".zip"
    return elapsed


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server (scripts/postgres-test-server.sh): the maintenance URL."""
    directory = Path(tempfile.mkdtemp(prefix="agentcore-blobs-bench-pg-"))
    script = REPOSITORY / "scripts" / "postgres-test-server.sh"
    started = subprocess.run(
        [str(script), "start", str(directory)], capture_output=True, text=True, timeout=300
    )
    if started.returncode != 0:
        raise RuntimeError(started.stderr)
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(script), "stop", str(directory)], capture_output=True, timeout=90)


def database(server_url: str) -> str:
    name = f"bench_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def baseline_src(given: str | None, keep: Path) -> Path:
    if given:
        return Path(given).resolve()
    archive = subprocess.run(
        ["git", "archive", BASELINE_COMMIT, "src"], cwd=REPOSITORY, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(keep)], input=archive, check=True)
    return keep / "src"


def measure_uploads(before: Path, pg: str, rounds: int, size: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"before (data dir)": [], "after, SQLite": [], "after, PostgreSQL": []}
    with (
        server(before, None) as old,
        server(None, None) as sqlite_server,
        server(None, database(pg)) as pg_server,
    ):
        urls = {"before (data dir)": old, "after, SQLite": sqlite_server, "after, PostgreSQL": pg_server}
        for url in urls.values():  # warm each server's upload path
            upload_seconds(url, zip_of({"agent.py": b"warm"}))
        for number in range(rounds):
            body = zip_of({"agent.py": AGENT.encode(), "payload.bin": os.urandom(size)})
            order = list(urls.items())
            if number % 2:
                order.reverse()
            for name, url in order:
                times[name].append(upload_seconds(url, body))
    return times


def first_answer_seconds(data: Any, arn: str) -> float:
    began = time.perf_counter()
    reply = data.invoke_agent_runtime(
        agentRuntimeArn=arn, payload=b"{}", runtimeSessionId=secrets.token_hex(17)
    )
    assert json.loads(reply["response"].read())["six"] == "1.16.0"
    return time.perf_counter() - began


def measure_first_sessions(pg: str, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {
        "built it": [],
        "fetch + build on first use": [],
        "after its first use": [],
    }
    url = database(pg)
    with server(None, url) as one, server(None, url) as two:
        control_one, data_one = clients(one)
        _, data_two = clients(two)
        for number in range(rounds):
            # A requirements text of its own each round: a fresh environment on both servers.
            body = zip_of(
                {"agent.py": AGENT.encode(), "requirements.txt": f"six==1.16.0\n# {number}\n".encode()}
            )
            reply = signed_put(one + "/_agentcore/artifacts", body)
            key = reply.json()["key"]
            created = control_one.create_agent_runtime(
                agentRuntimeName=f"bench{number}",
                roleArn="arn:aws:iam::000000000000:role/bench",
                agentRuntimeArtifact={"codeConfiguration": {
                    "code": {"s3": {"bucket": "agentcore-artifacts", "prefix": key}},
                    "runtime": f"PYTHON_3_{sys.version_info.minor}", "entryPoint": ["agent.py"]}},
            )  # fmt: skip
            while (
                control_one.get_agent_runtime(agentRuntimeId=created["agentRuntimeId"])["status"]
                == "CREATING"
            ):
                time.sleep(0.2)
            arn = created["agentRuntimeArn"]
            times["built it"].append(first_answer_seconds(data_one, arn))
            times["fetch + build on first use"].append(first_answer_seconds(data_two, arn))
            times["after its first use"].append(first_answer_seconds(data_two, arn))
    return times


def table(title: str, times: dict[str, list[float]], reference: str) -> str:
    base = statistics.median(times[reference])
    lines = [f"### {title}", "", "| | median s | vs " + reference + " | rounds |", "|---|---|---|---|"]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.3f} | {median / base:.2f}x | {len(values)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline-src", help="the src/ of the baseline tree (default: main at the branch point)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--upload-mib", type=int, default=50)
    settings = parser.parse_args()
    keep = Path(tempfile.mkdtemp(prefix="oacsa-baseline-"))
    try:
        before = baseline_src(settings.baseline_src, keep)
        with postgres() as pg:
            uploads = measure_uploads(before, pg, settings.rounds, settings.upload_mib * MIB)
            sessions = measure_first_sessions(pg, settings.rounds)
    finally:
        shutil.rmtree(keep, ignore_errors=True)
    print(table(f"Upload of a {settings.upload_mib} MiB artifact", uploads, "before (data dir)"))
    print()
    print(table("First answer of a new session (process backend, no warm pool)", sessions, "built it"))


if __name__ == "__main__":
    main()
