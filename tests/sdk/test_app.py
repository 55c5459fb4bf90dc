"""The assembled app: Starlette features, public names and import weight: `runtime/app.py`."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from bedrock_agentcore import BedrockAgentCoreApp


def test_middleware_wraps_every_route() -> None:
    class Stamp(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: Any) -> Response:
            response: Response = await call_next(request)
            response.headers["x-stamp"] = request.url.path
            return response

    app = BedrockAgentCoreApp(middleware=[Middleware(Stamp)])

    @app.entrypoint
    def handler(payload: Any) -> Any:
        return "ok"

    with TestClient(app) as client:
        assert client.post("/invocations", json={}).headers["x-stamp"] == "/invocations"
        assert client.get("/ping").headers["x-stamp"] == "/ping"


def test_lifespan_runs_around_serving() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = BedrockAgentCoreApp(lifespan=lifespan)

    @app.entrypoint
    def handler(payload: Any) -> Any:
        return list(events)

    with TestClient(app) as client:
        assert client.post("/invocations", json={}).json() == ["startup"]
    assert events == ["startup", "shutdown"]


def test_entrypoint_returns_the_function_with_a_run_shortcut() -> None:
    app = BedrockAgentCoreApp()

    def handler(payload: Any) -> Any:
        return payload

    assert app.entrypoint(handler) is handler
    assert callable(handler.run)  # type: ignore[attr-defined]
    assert app.handlers == {"main": handler}


def test_drop_in_import_paths_exist() -> None:
    from bedrock_agentcore import BedrockAgentCoreContext, PingStatus, RequestContext
    from bedrock_agentcore.runtime import AgentCoreRuntimeClient
    from bedrock_agentcore.runtime import BedrockAgentCoreApp as RuntimeApp
    from bedrock_agentcore.runtime.context import BedrockAgentCoreContext as ContextClass
    from bedrock_agentcore.runtime.context import RequestContext as ContextModel
    from bedrock_agentcore.runtime.models import REQUEST_ID_HEADER, SESSION_HEADER

    assert RuntimeApp is BedrockAgentCoreApp
    assert ContextClass is BedrockAgentCoreContext and ContextModel is RequestContext
    assert PingStatus("HealthyBusy") is PingStatus.HEALTHY_BUSY
    assert SESSION_HEADER == "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
    assert REQUEST_ID_HEADER == "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id"
    assert AgentCoreRuntimeClient.__name__ == "AgentCoreRuntimeClient"


def test_importing_the_sdk_loads_neither_botocore_nor_the_platform() -> None:
    code = (
        "import sys, bedrock_agentcore\n"
        "app = bedrock_agentcore.BedrockAgentCoreApp()\n"
        "heavy = [m for m in ('botocore', 'boto3', 'open_agentcore', 'pydantic') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""


def test_warm_up_starts_the_thread_a_sync_entrypoint_runs_in_before_the_first_call() -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        return {"echo": payload}

    assert (app.dispatcher.threads.size, app.dispatcher.loops.size) == (0, 0)
    app.warm_up()
    app.warm_up()  # once is enough
    assert (app.dispatcher.threads.size, app.dispatcher.loops.size) == (1, 0)
    with TestClient(app) as client:
        assert client.post("/invocations", json={"a": 1}).json() == {"echo": {"a": 1}}
    assert app.dispatcher.threads.size == 1  # the call found it idle and took it


def test_warm_up_starts_the_loop_an_async_entrypoint_runs_on_before_the_first_call() -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    async def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        return {"echo": payload}

    app.warm_up()
    assert (app.dispatcher.threads.size, app.dispatcher.loops.size) == (0, 1)
    with TestClient(app) as client:
        assert client.post("/invocations", json={"a": 1}).json() == {"echo": {"a": 1}}
    assert app.dispatcher.loops.size == 1


def test_warm_up_without_an_entrypoint_starts_nothing() -> None:
    app = BedrockAgentCoreApp()
    app.warm_up()
    assert (app.dispatcher.threads.size, app.dispatcher.loops.size) == (0, 0)
