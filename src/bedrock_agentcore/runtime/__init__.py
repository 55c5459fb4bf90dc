"""The agent side of AgentCore Runtime: `BedrockAgentCoreApp`, its context and the runtime client.

`AgentCoreRuntimeClient` is imported on first use, so agents that never call it never load botocore.
"""

from typing import TYPE_CHECKING, Any

from .app import BedrockAgentCoreApp
from .context import BedrockAgentCoreContext, RequestContext
from .logs import configure_json_logging
from .models import PingStatus

if TYPE_CHECKING:
    from .client import AgentCoreRuntimeClient

__all__ = [
    "AgentCoreRuntimeClient",
    "BedrockAgentCoreApp",
    "BedrockAgentCoreContext",
    "PingStatus",
    "RequestContext",
    "configure_json_logging",
]


def __getattr__(name: str) -> Any:
    if name == "AgentCoreRuntimeClient":
        from .client import AgentCoreRuntimeClient

        return AgentCoreRuntimeClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
