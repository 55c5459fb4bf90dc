"""A large artifact upload into a PostgreSQL store streams through the server: its memory (RSS,
read from /proc) grows by a small part of the upload's size, never by the whole of it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import httpx
import psycopg
import pytest

from tests.conftest import free_port, wait_until
from tests.server.conftest import KEY_ID, SECRET
from tests.store.conftest import fresh_postgres_database, postgres_server  # noqa: F401 - a fixture

MIB = 1024 * 1024
UPLOAD = 100 * MIB
# Generous: the server reads and writes the upload a chunk (1 MiB) at a time; what grows is the
# allocator's and the database driver's working set, never a copy of the upload.
MAX_GROWTH = 40 * MIB


def status_bytes(pid: int, field: str) -> int:
    """A memory figure of /proc/<pid>/status (VmRSS, VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def write_large_zip(path: Path, size: int) -> str:
    """A zip of `size` random bytes (stored, so it stays that large); returns its SHA-256."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("agent.py", "print('large')\n")
        with archive.open("payload.bin", "w", force_zip64=True) as member:
            for _ in range(size // MIB):
                member.write(os.urandom(MIB))
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def signed_headers(url: str, sha256: str, size: int) -> dict[str, str]:
    # The body's hash is given, not computed by botocore: the test never holds the body in memory.
    request = botocore.awsrequest.AWSRequest(
        method="PUT", url=url, headers={"X-Amz-Content-SHA256": sha256, "Content-Length": str(size)}
    )
    botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(KEY_ID, SECRET), "bedrock-agentcore", "us-east-1"
    ).add_auth(request)
    return dict(request.headers)


def streamed(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while block := source.read(MIB):
            yield block


@pytest.fixture
def database(postgres_server: str) -> Iterator[str]:  # noqa: F811 - the imported fixture
    url, drop = fresh_postgres_database(postgres_server)
    try:
        yield url
    finally:
        drop()


@pytest.mark.timeout(300)
def test_a_100_mib_upload_into_postgresql_does_not_grow_the_server_by_its_size(database: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="oacm-", dir="/tmp"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "AGENTCORE_HOME": str(home),
        "AGENTCORE_ADMIN_ACCESS_KEY_ID": KEY_ID,
        "AGENTCORE_ADMIN_SECRET_ACCESS_KEY": SECRET,
    }
    command = [
        sys.executable, "-m", "open_agentcore.cli", "server", "run", "--port", str(port),
        "--data-dir", str(home / "server"), "--store", database, "--warm-pool", "0",
    ]  # fmt: skip
    with (home / "server.log").open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:

        def up() -> bool:
            assert process.poll() is None, (home / "server.log").read_text()
            try:
                return httpx.get(url + "/_agentcore/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, interval=0.05)
        zip_path = home / "large.zip"
        small_sha = write_large_zip(zip_path, MIB)
        # A first, small upload: the upload path's code and connections are in place before measuring.
        target = url + "/_agentcore/artifacts"
        warm = httpx.put(
            target,
            content=streamed(zip_path),
            headers=signed_headers(target, small_sha, zip_path.stat().st_size),
            timeout=60,
        )
        assert warm.status_code == 200, warm.text
        sha256 = write_large_zip(zip_path, UPLOAD)
        before = status_bytes(process.pid, "VmRSS")
        reply = httpx.put(
            target,
            content=streamed(zip_path),
            headers=signed_headers(target, sha256, zip_path.stat().st_size),
            timeout=240,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["key"] == f"{sha256}.zip"
        peak = status_bytes(process.pid, "VmHWM")
        with psycopg.connect(database) as connection:
            stored = connection.execute("SELECT size FROM blobs WHERE sha256 = %s", (sha256,)).fetchone()
        assert stored == (zip_path.stat().st_size,)  # it went into the store, not only to disk
        assert peak - before < MAX_GROWTH, f"the server grew by {(peak - before) / MIB:.1f} MiB"
    finally:
        process.kill()
        process.wait(30)
        shutil.rmtree(home, ignore_errors=True)
