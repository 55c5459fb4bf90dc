"""The smallest agent: a greeting for `payload["name"]` (or `payload["prompt"]`).

Run:     python agent.py                      # serves http://127.0.0.1:8080 ($PORT overrides)
Invoke:  curl -s http://127.0.0.1:8080/invocations -H 'Content-Type: application/json' -d '{"name": "Ada"}'
         → {"message": "Hello, Ada!", "visit": 1}
         `"stream": true` in the payload streams the greeting as Server-Sent Events; `/ws` greets
         each WebSocket message and closes.
Deploy:  agentcore configure --entrypoint agent.py --non-interactive && agentcore deploy
"""

import json
import os
from collections.abc import Iterator
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
visits: dict[str, int] = {}  # per session: on the runtime server each session has its own process


def _name(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("name") or payload.get("prompt") or "world")
    return "world"


@app.entrypoint
def invoke(payload: Any, context: Any) -> dict[str, Any] | Iterator[str]:
    name = _name(payload)
    if isinstance(payload, dict) and payload.get("stream"):
        return (part for part in ["Hello", ", ", name, "!"])
    session = context.session_id or "no-session"
    visits[session] = visits.get(session, 0) + 1
    return {"message": f"Hello, {name}!", "visit": visits[session]}


@app.websocket
async def greet(websocket: Any, context: Any) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = {"name": text}
    await websocket.send_text(f"Hello over a WebSocket, {_name(payload)}!")
    await websocket.close()


if __name__ == "__main__":
    # Passing the port explicitly keeps this file runnable on Amazon's SDK as well.
    app.run(port=int(os.environ.get("PORT", "8080")))
