"""A real multi-node Ray cluster on this machine's loopback, and a runtime server using it.

Every node of `ray.cluster_utils.Cluster` is real (its own GCS client, raylet, object store and
worker processes) and they talk over TCP, as nodes on several machines do; they just share this
machine. Each node offers 1 CPU, and the server's sessions ask for 1 CPU each, so a node holds one
session at a time: where a session lands is Ray's decision, but it cannot land on a full node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from open_agentcore.server import ServerConfig
from open_agentcore.server.app import build_app
from tests.conftest import free_port, wait_until
from tests.server.conftest import KEY_ID, SECRET, Server, clients, serve_as_configured

NODES = 3
NODE_MEMORY = 1024**3
SESSION_MEMORY = 256 * 1024**2


@dataclass
class RayCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    address: str
    node_dir: Path


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """Three nodes (the head and two more) on 127.0.0.1, stopped afterwards whatever happened."""
    # Read by Ray when it is imported: no usage statistics, and 127.0.0.1 stays 127.0.0.1.
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    temp_dir = tempfile.mkdtemp(prefix="oar-", dir="/tmp")  # Ray's socket paths are bounded in length
    node_dir = Path(tempfile.mkdtemp(prefix="oarn-", dir="/tmp"))
    # Cluster writes the head's address into Ray's default temp dir whatever temp_dir says, and
    # fails when that dir does not exist yet (a machine where Ray never ran).
    from ray._common.utils import get_default_ray_temp_dir

    Path(get_default_ray_temp_dir()).mkdir(parents=True, exist_ok=True)
    node = {"num_cpus": 1, "memory": NODE_MEMORY, "node_ip_address": "127.0.0.1",
            "object_store_memory": 80 * 1024**2}  # fmt: skip
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**node, "include_dashboard": False, "temp_dir": temp_dir},
    )
    try:
        for _ in range(NODES - 1):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
        yield RayCluster(cluster, cluster.address, node_dir)
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(node_dir, ignore_errors=True)


@contextlib.contextmanager
def ray_server(cluster: RayCluster, **overrides: Any) -> Iterator[tuple[Server, Any]]:
    """A runtime server with `--backend ray` on the cluster; yields it and its app (its state is
    what the tests inspect: which worker listens where)."""
    data_dir = Path(tempfile.mkdtemp(prefix="oacs-", dir="/tmp"))
    options: dict[str, Any] = {
        "min_lifecycle_seconds": 1, "warm_pool": 0, "reap_interval": 0.2, "backend": "ray",
        "ray_address": cluster.address, "ray_node_dir": cluster.node_dir, "session_cpus": 1.0,
        "session_memory": SESSION_MEMORY,
    }  # fmt: skip
    options.update(overrides)
    options.setdefault("port", free_port())
    try:
        with pytest.MonkeyPatch.context() as environment:
            environment.setenv("AGENTCORE_ADMIN_ACCESS_KEY_ID", KEY_ID)
            environment.setenv("AGENTCORE_ADMIN_SECRET_ACCESS_KEY", SECRET)
            config = ServerConfig(data_dir=data_dir, **options)
            app = build_app(config)
        with serve_as_configured(app, config) as url:
            yield Server(url, data_dir, *clients(url)), app
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def ray_server_process(
    ray_address: str,
    node_dir: Path,
    options: Sequence[str] = (),
    environment: Mapping[str, str] | None = None,
) -> Iterator[tuple[Server, subprocess.Popen[bytes], Path]]:
    """`agentcore server run --backend ray` as a real process (so a test can kill it), on a free
    port with a data dir of its own, once its health answers; yields it with its log, and stops it
    (SIGTERM, then SIGKILL) and removes its data dir afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="oars-", dir="/tmp"))
    port = free_port()
    command = [
        sys.executable, "-m", "open_agentcore.cli", "server", "run", "--port", str(port),
        "--data-dir", str(data_dir / "server"), "--backend", "ray", "--ray-address", ray_address,
        "--ray-node-dir", str(node_dir), "--session-cpus", "1", "--session-memory", str(SESSION_MEMORY),
        "--min-lifecycle-seconds", "1", "--warm-pool", "0", "--log-level", "info", *options,
    ]  # fmt: skip
    variables = {
        **(os.environ if environment is None else environment), "AGENTCORE_HOME": str(data_dir),
        "AGENTCORE_ADMIN_ACCESS_KEY_ID": KEY_ID, "AGENTCORE_ADMIN_SECRET_ACCESS_KEY": SECRET,
        "RAY_USAGE_STATS_ENABLED": "0",
    }  # fmt: skip
    log = data_dir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=variables, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(url + "/_agentcore/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=120, interval=0.1)
        yield Server(url, data_dir / "server", *clients(url)), process, log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
