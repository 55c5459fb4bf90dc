"""`/ws`: the WebSocket entrypoint through a real server: `runtime/websocket.py`."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

import pytest
import websockets
from starlette.websockets import WebSocket

from bedrock_agentcore import BedrockAgentCoreApp, BedrockAgentCoreContext, RequestContext
from bedrock_agentcore.runtime.websocket import NO_HANDLER


def _ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws"


def test_websocket_handler_gets_the_request_context(serve: Any) -> None:
    app = BedrockAgentCoreApp()

    @app.websocket
    async def handler(websocket: WebSocket, context: RequestContext) -> None:
        await websocket.accept()
        message = await websocket.receive_json()
        await websocket.send_json(
            {
                "echo": message,
                "session": context.session_id,
                "getter": BedrockAgentCoreContext.get_session_id(),
                "headers": dict(context.request_headers or {}),
            }
        )
        await websocket.close()

    async def talk(url: str) -> Any:
        headers = {
            "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "ws-session",
            "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Room": "blue",
        }
        async with websockets.connect(_ws_url(url), additional_headers=headers) as ws:
            await ws.send(json.dumps({"hi": 1}))
            return json.loads(await ws.recv())

    with serve(app) as url:
        reply = asyncio.run(talk(url))
    assert reply == {
        "echo": {"hi": 1},
        "session": "ws-session",
        "getter": "ws-session",
        "headers": {"X-Amzn-Bedrock-AgentCore-Runtime-Custom-Room": "blue"},
    }


def test_handler_exception_closes_with_1011(serve: Any) -> None:
    app = BedrockAgentCoreApp()

    @app.websocket
    async def handler(websocket: WebSocket, context: RequestContext) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise RuntimeError("tool crashed")

    async def talk(url: str) -> int | None:
        async with websockets.connect(_ws_url(url)) as ws:
            await ws.send("go")
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                await ws.recv()
            return closed.value.rcvd.code if closed.value.rcvd else None

    with serve(app) as url:
        assert asyncio.run(talk(url)) == 1011


def test_missing_websocket_handler_refuses_the_upgrade_with_the_reason(serve: Any) -> None:
    async def talk(url: str) -> tuple[int, Any]:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(_ws_url(url)):
                pass
        response = refused.value.response
        return response.status_code, json.loads(bytes(response.body or b""))

    with serve(BedrockAgentCoreApp()) as url:
        assert asyncio.run(talk(url)) == (403, {"error": NO_HANDLER})


def test_client_disconnect_is_quiet(serve: Any) -> None:
    app = BedrockAgentCoreApp()
    finished = threading.Event()
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    collector = Collect(level=logging.WARNING)
    logging.getLogger("bedrock_agentcore.app").addHandler(collector)

    @app.websocket
    async def handler(websocket: WebSocket, context: RequestContext) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.receive_text()
        finally:
            finished.set()

    async def talk(url: str) -> None:
        async with websockets.connect(_ws_url(url)) as ws:
            await ws.send("hello")

    try:
        with serve(app) as url:
            asyncio.run(talk(url))
            assert finished.wait(5)
    finally:
        logging.getLogger("bedrock_agentcore.app").removeHandler(collector)
    assert records == []


def test_one_parameter_websocket_handler_is_supported(serve: Any) -> None:
    app = BedrockAgentCoreApp()

    @app.websocket
    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("only the socket")
        await websocket.close()

    async def talk(url: str) -> Any:
        async with websockets.connect(_ws_url(url)) as ws:
            return await ws.recv()

    with serve(app) as url:
        assert asyncio.run(talk(url)) == "only the socket"
