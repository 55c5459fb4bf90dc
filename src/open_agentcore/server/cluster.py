"""The Ray backend as the server's flags configure it (`--backend ray`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from open_agentcore.artifacts import EnvironmentBuilder
from open_agentcore.backends import SessionLimits

from .config import ServerConfig

if TYPE_CHECKING:
    from open_agentcore.backends.ray import RayBackend


def ray_backend(config: ServerConfig, limits: SessionLimits, replica: str = "r") -> RayBackend:
    """Join (or start) the Ray cluster of `--ray-address`; `BackendUnavailable` when it cannot be.

    Each node builds environments with the server's own builder, in its own cache. `replica`
    begins the name of every actor this server starts (`server.replicas.replica_id`).
    """
    from open_agentcore.backends.ray import RayBackend, RayConfig

    return RayBackend(
        RayConfig(config.ray_address, node_root=config.ray_node_dir, replica=replica),
        sandbox=config.sandbox,
        network=config.session_network,
        uid_base=config.worker_uid_base,
        limits=limits,
        environments=EnvironmentBuilder,
        hidden_paths=(config.data_dir,),
    )


__all__ = ["ray_backend"]
