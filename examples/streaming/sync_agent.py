"""Streaming with a plain generator: it runs in a worker thread, so blocking calls inside are fine.

Run:     python sync_agent.py
Invoke:  curl -sN http://127.0.0.1:8080/invocations -H 'Content-Type: application/json' \
              -d '{"prompt": "one frame per word", "delay": 0.2}'
         → data: {"token": "one"} ... data: {"done": true, "tokens": 4}
"""

import os
import time
from collections.abc import Iterator
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    words = str(payload.get("prompt", "hello from a streaming agent")).split()
    delay = float(payload.get("delay", 0.05))
    for word in words:
        time.sleep(delay)  # a blocking call, e.g. a synchronous model client
        yield {"token": word}
    yield {"done": True, "tokens": len(words)}


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
