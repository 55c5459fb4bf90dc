"""Handlers that block their thread: `{"sync": true, "sleep": s}` or the async variant."""

import time

from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


def _sync(payload):
    time.sleep(float(payload.get("sleep", 1)))
    return {"slept": payload.get("sleep", 1)}


async def _async(payload):
    time.sleep(float(payload.get("sleep", 1)))  # blocks the loop's thread on purpose
    return {"slept": payload.get("sleep", 1)}


sync_app = BedrockAgentCoreApp()
sync_app.entrypoint(_sync)
app.entrypoint(_async)
