"""A WebSocket agent on `/ws` that sends every text message straight back.

Run:     python agent.py
Invoke:  python -m websockets ws://127.0.0.1:8080/ws      # then type lines; each comes back
         (or any WebSocket client; `curl` cannot speak WebSocket)
"""

import os

from starlette.websockets import WebSocket

from bedrock_agentcore import BedrockAgentCoreApp, RequestContext

app = BedrockAgentCoreApp()


@app.websocket
async def echo(websocket: WebSocket, context: RequestContext) -> None:
    await websocket.accept()
    # iter_text() ends quietly when the client disconnects.
    async for message in websocket.iter_text():
        await websocket.send_text(message)


if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
