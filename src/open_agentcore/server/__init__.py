"""The runtime server: AgentCore's REST protocol on one port, for boto3, the CLI and browsers.

The package itself stays light (the CLI imports it to find its data dir): the app is built by
`open_agentcore.server.app.build_app`, imported only by whoever serves it.
"""

from .config import ServerConfig, agentcore_home

__all__ = ["ServerConfig", "agentcore_home"]
