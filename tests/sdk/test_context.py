"""Request context: ids, forwarded headers, propagation and isolation: `runtime/context.py`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import uuid
from typing import Any

import httpx
from starlette.testclient import TestClient

from bedrock_agentcore import BedrockAgentCoreApp, BedrockAgentCoreContext, RequestContext

SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
REQUEST = "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id"


def _echo_context_app() -> BedrockAgentCoreApp:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def handler(payload: Any, context: RequestContext) -> Any:
        return {
            "session": context.session_id,
            "headers": dict(context.request_headers or {}),
            "getter_session": BedrockAgentCoreContext.get_session_id(),
            "getter_request": BedrockAgentCoreContext.get_request_id(),
            "getter_headers": BedrockAgentCoreContext.get_request_headers(),
            "path": context.request.url.path,
        }

    return app


def test_context_carries_session_request_and_forwarded_headers() -> None:
    with TestClient(_echo_context_app()) as client:
        reply = client.post(
            "/invocations",
            json={},
            headers={
                SESSION: "abc",
                REQUEST: "req-1",
                "Authorization": "Bearer token-1",
                "x-amzn-bedrock-agentcore-runtime-custom-tenant-id": "t-1",
            },
        ).json()
    assert reply["session"] == reply["getter_session"] == "abc"
    assert reply["getter_request"] == "req-1"
    expected = {"Authorization": "Bearer token-1", "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant-Id": "t-1"}
    assert reply["headers"] == reply["getter_headers"] == expected
    assert reply["path"] == "/invocations"


def test_only_authorization_and_the_custom_prefix_are_forwarded() -> None:
    with TestClient(_echo_context_app()) as client:
        reply = client.post(
            "/invocations",
            json={},
            headers={
                "X-Amz-Date": "20260101T000000Z",
                "X-Amz-Security-Token": "secret",
                "X-Amzn-Trace-Id": "Root=1",
                "X-Amzn-Bedrock-AgentCore-Runtime-User-Id": "u",
                "Cookie": "a=b",
                "Connection": "keep-alive",
                "X-Custom": "no",
            },
        ).json()
    assert reply["headers"] == {}


def test_forwarded_headers_are_looked_up_case_insensitively() -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def handler(payload: Any, context: RequestContext) -> Any:
        headers = context.request_headers or {}
        return [
            headers.get("x-amzn-bedrock-agentcore-runtime-custom-plan"),
            headers["X-AMZN-BEDROCK-AGENTCORE-RUNTIME-CUSTOM-PLAN"],
            "authorization" in headers,
        ]

    with TestClient(app) as client:
        reply = client.post(
            "/invocations", json={}, headers={"X-Amzn-Bedrock-AgentCore-Runtime-Custom-Plan": "gold"}
        )
    assert reply.json() == ["gold", "gold", False]


def test_a_session_id_sent_as_utf8_is_that_text() -> None:
    with TestClient(_echo_context_app()) as client:
        utf8 = client.post("/invocations", json={}, headers={SESSION: "séance-会話".encode()})
        latin1 = client.post("/invocations", json={}, headers={SESSION: "séance".encode("latin-1")})
    assert utf8.json()["session"] == "séance-会話"
    assert latin1.json()["session"] == "séance"  # not UTF-8: read as latin-1, as http.client sends it


def test_request_id_is_generated_when_absent() -> None:
    with TestClient(_echo_context_app()) as client:
        first = client.post("/invocations", json={}).json()["getter_request"]
        second = client.post("/invocations", json={}).json()["getter_request"]
    assert uuid.UUID(first) and uuid.UUID(second) and first != second


def test_background_threads_and_executors_started_in_a_handler_see_the_context() -> None:
    app = BedrockAgentCoreApp()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    @app.entrypoint
    def handler(payload: Any) -> Any:
        seen: dict[str, Any] = {}

        def look() -> None:
            seen["thread"] = BedrockAgentCoreContext.get_session_id()

        thread = threading.Thread(target=look)
        thread.start()
        thread.join(5)
        seen["executor"] = pool.submit(BedrockAgentCoreContext.get_session_id).result(5)
        return seen

    with TestClient(app) as client:
        first = client.post("/invocations", json={}, headers={SESSION: "one"}).json()
        # The executor's thread is reused: it must see the new request, not the old one.
        second = client.post("/invocations", json={}, headers={SESSION: "two"}).json()
    pool.shutdown()
    assert first == {"thread": "one", "executor": "one"}
    assert second == {"thread": "two", "executor": "two"}
    assert BedrockAgentCoreContext.get_session_id() is None


def test_async_handlers_see_the_context_in_tasks_they_spawn() -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    async def handler(payload: Any) -> Any:
        async def child() -> Any:
            await asyncio.sleep(0)
            return BedrockAgentCoreContext.get_session_id()

        return await asyncio.gather(child(), asyncio.to_thread(BedrockAgentCoreContext.get_session_id))

    with TestClient(app) as client:
        assert client.post("/invocations", json={}, headers={SESSION: "s"}).json() == ["s", "s"]


def test_concurrent_requests_never_see_each_others_context(serve: Any) -> None:
    app = BedrockAgentCoreApp()
    barrier = threading.Barrier(5, timeout=10)  # asyncio's default executor has >= 5 threads

    @app.entrypoint
    async def handler(payload: Any) -> Any:
        before = BedrockAgentCoreContext.get_session_id()
        await asyncio.to_thread(barrier.wait)  # all five are in flight at once here
        after = BedrockAgentCoreContext.get_session_id()
        return [before, after, BedrockAgentCoreContext.get_request_id()]

    sync_app = BedrockAgentCoreApp()

    @sync_app.entrypoint
    def sync_handler(payload: Any) -> Any:
        before = BedrockAgentCoreContext.get_session_id()
        barrier.wait()
        return [before, BedrockAgentCoreContext.get_session_id(), BedrockAgentCoreContext.get_request_id()]

    for target in (app, sync_app):
        barrier.reset()
        with serve(target) as url, httpx.Client(base_url=url, timeout=20) as client:

            def call(i: int) -> Any:
                return client.post(
                    "/invocations", json={}, headers={SESSION: f"s{i}", REQUEST: f"r{i}"}
                ).json()

            with concurrent.futures.ThreadPoolExecutor(5) as callers:
                results = list(callers.map(call, range(5)))
        assert results == [[f"s{i}", f"s{i}", f"r{i}"] for i in range(5)]


def test_getters_are_none_outside_a_request() -> None:
    assert BedrockAgentCoreContext.get_session_id() is None
    assert BedrockAgentCoreContext.get_request_id() is None
    assert BedrockAgentCoreContext.get_request_headers() is None


def test_the_raw_request_is_readable_inside_the_handler() -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    async def handler(payload: Any, context: RequestContext) -> Any:
        raw = await context.request.body()
        return {"raw": raw.decode(), "query": context.request.query_params.get("q")}

    with TestClient(app) as client:
        reply = client.post("/invocations?q=1", content=b'{"a": 1}')
    assert reply.json() == {"raw": '{"a": 1}', "query": "1"}


_TRACE: contextvars.ContextVar[str] = contextvars.ContextVar("trace", default="none")


def test_a_context_variable_set_before_an_await_is_the_same_after_it() -> None:
    # Tracing libraries set a variable, await, then reset it with the token: every step of the
    # handler (and of a streamed async generator) must run in one context for that to work.
    app = BedrockAgentCoreApp()

    @app.entrypoint
    async def handler(payload: Any) -> Any:
        token = _TRACE.set("inside")
        await asyncio.sleep(0.001)  # a real suspension: the rest runs after the loop turned
        seen = _TRACE.get()
        _TRACE.reset(token)
        if payload.get("stream"):
            return _frames()
        return {"seen": seen, "after_reset": _TRACE.get()}

    async def _frames() -> Any:
        token = _TRACE.set("streaming")
        for _ in range(3):
            await asyncio.sleep(0.001)
            yield _TRACE.get()
        _TRACE.reset(token)
        yield "reset ok"

    with TestClient(app) as client:
        assert client.post("/invocations", json={}).json() == {"seen": "inside", "after_reset": "none"}
        streamed = client.post("/invocations", json={"stream": True}).text
    assert [line.removeprefix("data: ") for line in streamed.split("\n\n") if line] == [
        '"streaming"', '"streaming"', '"streaming"', '"reset ok"',
    ]  # fmt: skip
