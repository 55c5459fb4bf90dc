"""Joining a Ray cluster from the server: where it is (`RayConfig`), connecting with every address
kept on loopback when it is a loopback one, and listing its nodes with a deadline.

Ray is imported by `connect` only: the server and the CLI start without it.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import BackendUnavailable

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class RayConfig:
    """Where the cluster is and how sessions are placed on it.

    `address`: `local` (a private Ray on this machine, stopped with the server), `auto` (the Ray
    started on this machine with `ray start`, or `$RAY_ADDRESS`), `host:port` (a head's GCS) or
    `ray://host:port` (Ray Client). `placement_timeout`: how long a session may wait for a node
    with room before it is refused. `node_root`: each node's cache and work dir (one subdir per
    node; None: `~/.agentcore/ray-node` of the user running the node).
    """

    address: str = "local"
    placement_timeout: float = 10.0
    node_root: Path | None = None
    namespace: str = "open-agentcore"
    # `local` only: the CPUs the private Ray offers (None: all of this machine's).
    local_cpus: int | None = None
    # Who starts the actors: their names begin with it, so a restarted replica finds its own.
    replica: str = "r"


def connect(config: RayConfig) -> tuple[Any, bool]:
    """Ray, imported and connected (or started, for `local`) as `config` says, loopback kept; and
    whether this call joined it (False: this process was connected already, and that is used)."""
    address = config.address
    loopback = address == "local" or _host_of(address) in _LOOPBACK
    # Before Ray is imported: these are read once, at import.
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if loopback:
        # Ray replaces a loopback address by the host's outward interface unless told it is alone.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
    except ImportError:
        raise BackendUnavailable("--backend ray needs Ray: pip install 'open-agentcore[ray]'") from None
    if ray.is_initialized():
        return ray, False
    if address not in ("local", "auto") and not address.startswith("ray://"):
        _reachable(address)
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "namespace": config.namespace,
    }
    if address == "local":
        options.update(_node_ip_address="127.0.0.1", num_cpus=config.local_cpus)
    elif loopback:
        options["_node_ip_address"] = "127.0.0.1"
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise BackendUnavailable(f"cannot join the Ray cluster at {address}: {error}") from None
    return ray, True


def list_nodes(ray: Any, timeout: float) -> list[dict[str, Any]]:
    """The cluster's nodes as `ray.nodes()` describes them (`NodeID`, `Alive`, `Resources`).

    Asked through Ray's GCS client with a deadline (`TimeoutError` past it): `ray.nodes()` waits
    without one, and a call of it still waiting when a new head answers aborts the process.
    """
    client = getattr(ray._private.worker.global_worker, "gcs_client", None)
    if client is None or not hasattr(client, "get_all_node_info"):
        described: list[dict[str, Any]] = ray.nodes()  # older Ray
        return described
    try:
        infos = client.get_all_node_info(timeout=timeout)
    except ray.exceptions.RpcError as error:
        if "Timed out" in str(error):
            raise TimeoutError(str(error)) from None
        raise
    alive = 0  # GcsNodeInfo.GcsNodeState.ALIVE
    return [
        {"NodeID": info.node_id.hex(), "Alive": info.state == alive, "Resources": dict(info.resources_total)}
        for info in infos.values()
    ]


def _host_of(address: str) -> str:
    host = address.removeprefix("ray://").rpartition(":")[0]
    return host.strip("[]")


def _reachable(address: str) -> None:
    """Ray retries an absent head for minutes: refuse quickly when nothing answers there."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_TIMEOUT):
            return
    except (OSError, ValueError) as error:
        raise BackendUnavailable(
            f"no Ray head answers at {address} ({error}); start one with `ray start --head` or give "
            "--ray-address local"
        ) from None


__all__ = ["RayConfig", "connect", "list_nodes"]
