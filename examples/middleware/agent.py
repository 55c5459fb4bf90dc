"""Starlette middleware: every HTTP response carries how long the agent took to produce it.

Run:     python agent.py
Invoke:  curl -si http://127.0.0.1:8080/invocations -H 'Content-Type: application/json' -d '{"prompt": "hi"}'
         → HTTP/1.1 200 OK
           x-agent-name: middleware-example
           x-process-time-ms: 0.41
           ...
"""

import os
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bedrock_agentcore import BedrockAgentCoreApp


class ProcessTimeHeader:
    """Adds `X-Process-Time-Ms` (time to the response headers) and a fixed `X-Agent-Name`.

    Written as plain ASGI rather than `BaseHTTPMiddleware`, so streamed responses pass through
    untouched and WebSocket connections are left alone.
    """

    def __init__(self, app: ASGIApp, agent_name: str) -> None:
        self.app = app
        self.agent_name = agent_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Process-Time-Ms"] = f"{(time.perf_counter() - started) * 1000:.2f}"
                headers["X-Agent-Name"] = self.agent_name
            await send(message)

        await self.app(scope, receive, send_with_headers)


app = BedrockAgentCoreApp(middleware=[Middleware(ProcessTimeHeader, agent_name="middleware-example")])


@app.entrypoint
def invoke(payload: Any) -> dict[str, Any]:
    return {"echo": payload}


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
