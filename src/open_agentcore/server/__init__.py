"""The runtime server: AgentCore's REST protocol on one port, for boto3, the CLI and browsers."""

from .app import build_app
from .config import ServerConfig, agentcore_home

__all__ = ["ServerConfig", "agentcore_home", "build_app"]
