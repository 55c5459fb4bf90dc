"""Agents the console's tests deploy."""

from __future__ import annotations

import json
from typing import Any

from tests.server.conftest import Server

# Streams `count` frames; frame k leaves only once an invocation {"release": k} in the same session
# has come: the test decides when each frame may arrive. Every wait is bounded.
GATED = """
import json
import threading
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()
_gates = {}
_lock = threading.Lock()


def gate(k):
    with _lock:
        return _gates.setdefault(k, threading.Event())


@app.entrypoint
def invoke(payload):
    if "release" in payload:
        gate(int(payload["release"])).set()
        return {"released": payload["release"]}
    if "say" in payload:
        print(payload["say"], flush=True)
        return {"said": payload["say"]}
    return frames(int(payload.get("count", 3)))


def frames(count):
    for k in range(count):
        if not gate(k).wait(60):
            yield {"error": f"frame {k} was never released"}
            return
        yield {"frame": k, "text": f"chunk {k}"}


@app.websocket
async def talk(websocket, context):
    await websocket.accept()
    while True:
        text = await websocket.receive_text()
        await websocket.send_text(json.dumps({"echo": text}))
"""

HELLO = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"hello": payload.get("name", "world")}
"""


def invoke_json(server: Server, arn: str, session_id: str, payload: dict[str, Any]) -> Any:
    """A boto3 invocation (the admin key), its JSON answer."""
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=arn, runtimeSessionId=session_id, payload=json.dumps(payload).encode()
    )
    return json.loads(reply["response"].read())


# A plain Starlette app (any ASGI app is an agent): answers with the headers its worker was sent.
HEADERS_ECHO = """
import time
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def invocations(request):
    return JSONResponse({"headers": dict(request.headers)})


async def ping(request):
    return JSONResponse({"status": "Healthy", "time_of_last_update": int(time.time())})


app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)])
"""

# Answers every invocation with an HTML page that would run a script, were it allowed to.
HTML_PAGE = """
import time
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

PAGE = "<html><body><script>fetch('/_agentcore/console/session')</script>owned</body></html>"


async def invocations(request):
    return HTMLResponse(PAGE)


async def ping(request):
    return JSONResponse({"status": "Healthy", "time_of_last_update": int(time.time())})


app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping)])
"""
