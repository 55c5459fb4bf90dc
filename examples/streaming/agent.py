"""Streaming with an async generator: each yielded value is sent at once as one SSE frame.

Run:     python agent.py
Invoke:  curl -sN http://127.0.0.1:8080/invocations -H 'Content-Type: application/json' \
              -d '{"prompt": "streams arrive word by word", "delay": 0.2}'
         → data: {"token": "streams"}
           data: {"token": "arrive"}
           ...
           data: {"done": true, "tokens": 4}

`sync_agent.py` next to this file is the same agent written as a plain (sync) generator.
"""

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
async def invoke(payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    words = str(payload.get("prompt", "hello from a streaming agent")).split()
    delay = float(payload.get("delay", 0.05))
    for word in words:
        # Stands in for waiting on a model's next token; the event loop stays free meanwhile.
        await asyncio.sleep(delay)
        yield {"token": word}
    yield {"done": True, "tokens": len(words)}


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
