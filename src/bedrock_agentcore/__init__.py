"""Agent SDK compatible with Amazon Bedrock AgentCore Runtime, served by open-agentcore.

Write `app = BedrockAgentCoreApp()`, decorate a function with `@app.entrypoint`, call `app.run()`.
"""

from .runtime import BedrockAgentCoreApp, BedrockAgentCoreContext, RequestContext, configure_json_logging
from .runtime.models import PingStatus

__all__ = [
    "BedrockAgentCoreApp",
    "BedrockAgentCoreContext",
    "PingStatus",
    "RequestContext",
    "configure_json_logging",
]
