"""How handlers are classified and called: `runtime/dispatch.py` and `runtime/loops.py`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import threading
from typing import Any

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient

from bedrock_agentcore import BedrockAgentCoreApp, RequestContext
from bedrock_agentcore.runtime.dispatch import HandlerKind, handler_kind, takes_context


def test_second_positional_parameter_of_any_name_receives_the_context() -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def handler(payload: Any, ctx: RequestContext) -> dict[str, Any]:
        return {"is_context": isinstance(ctx, RequestContext), "session": ctx.session_id}

    with TestClient(app) as client:
        reply = client.post(
            "/invocations", json={}, headers={"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "s-1"}
        )
    assert reply.json() == {"is_context": True, "session": "s-1"}


def test_single_parameter_handler_gets_only_the_payload() -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def handler(*only: Any) -> int:
        return len(only)

    def one(payload: Any) -> Any:
        return payload

    assert takes_context(one) is False
    assert takes_context(handler) is True
    with TestClient(app) as client:
        assert client.post("/invocations", json={}).json() == 2


def test_calling_convention_is_decided_at_registration_not_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def handler(payload: Any, context: Any) -> str:
        return "ok"

    calls = []
    real_signature = inspect.signature

    def counting_signature(obj: Any, *args: Any, **kwargs: Any) -> inspect.Signature:
        calls.append(obj)
        return real_signature(obj, *args, **kwargs)

    monkeypatch.setattr(inspect, "signature", counting_signature)
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post("/invocations", json={}).json() == "ok"
    assert calls == []


def test_handler_kinds_cover_partials_and_callable_objects() -> None:
    async def coroutine_function(payload: Any) -> Any:
        return payload

    async def async_generator_function(payload: Any) -> Any:
        yield payload

    class AsyncCallable:
        async def __call__(self, payload: Any) -> Any:
            return payload

    assert handler_kind(coroutine_function) is HandlerKind.ASYNC
    assert handler_kind(functools.partial(coroutine_function)) is HandlerKind.ASYNC
    assert handler_kind(AsyncCallable()) is HandlerKind.ASYNC
    assert handler_kind(async_generator_function) is HandlerKind.ASYNC_GENERATOR
    assert handler_kind(lambda payload: payload) is HandlerKind.SYNC


def test_async_handler_runs_off_the_server_loop() -> None:
    app = BedrockAgentCoreApp()
    server_threads: list[str] = []

    async def where(request: Any) -> Any:
        return PlainTextResponse(threading.current_thread().name)

    app.add_route("/where", where)

    @app.entrypoint
    async def handler(payload: Any) -> str:
        return threading.current_thread().name

    with TestClient(app) as client:
        server_threads.append(client.get("/where").text)
        handler_thread = client.post("/invocations", json={}).json()
    assert handler_thread.startswith("agentcore-loop-")
    assert handler_thread != server_threads[0]


def test_two_blocking_async_handlers_run_side_by_side(serve: Any) -> None:
    """Each handler blocks its thread until the other has started; on one shared loop this deadlocks."""
    app = BedrockAgentCoreApp()
    arrived = threading.Barrier(2, timeout=10)

    @app.entrypoint
    async def handler(payload: Any) -> str:
        arrived.wait()  # blocks the loop's thread, as a sync SDK call inside async def would
        return "done"

    with serve(app) as url, httpx.Client(base_url=url, timeout=20) as client:
        results: list[Any] = []
        threads = [
            threading.Thread(target=lambda: results.append(client.post("/invocations", json={}).json()))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert results == ["done", "done"]
    assert not arrived.broken


def test_ping_answers_while_sync_and_async_handlers_block(serve: Any) -> None:
    app = BedrockAgentCoreApp()
    release = threading.Event()
    started = threading.Semaphore(0)

    @app.entrypoint
    async def handler(payload: Any) -> str:
        started.release()
        release.wait(20)
        return "released"

    sync_app = BedrockAgentCoreApp()

    @sync_app.entrypoint
    def sync_handler(payload: Any) -> str:
        started.release()
        release.wait(20)
        return "released"

    for target in (app, sync_app):
        release.clear()
        with serve(target) as url, httpx.Client(base_url=url, timeout=20) as client:
            results: list[str] = []

            def call(client: httpx.Client = client, results: list[str] = results) -> None:
                results.append(client.post("/invocations", json={}).json())

            blockers = [threading.Thread(target=call) for _ in range(4)]
            for thread in blockers:
                thread.start()
            for _ in range(4):
                assert started.acquire(timeout=10)
            ping = httpx.get(url + "/ping", timeout=5)
            assert ping.json()["status"] == "Healthy"
            assert results == []  # the handlers really were still blocked while /ping answered
            release.set()
            for thread in blockers:
                thread.join(20)
            assert results == ["released"] * 4


def test_sync_function_returning_a_coroutine_is_awaited() -> None:
    app = BedrockAgentCoreApp()

    async def later(value: int) -> int:
        return value * 2

    @app.entrypoint
    def handler(payload: Any) -> Any:
        return later(payload["n"])

    with TestClient(app) as client:
        assert client.post("/invocations", json={"n": 21}).json() == 42


def test_well_behaved_async_handlers_share_one_loop_so_loop_bound_globals_work(serve: Any) -> None:
    """A module-level asyncio lock (or async client) binds to one loop; every request must use that loop."""
    # None of these handlers blocks its loop, so none may leave it, even when a loaded machine does
    # not schedule the loop's thread for longer than the stall hand-off's 20 ms (a loop is judged
    # stalled by a job's step that runs that long, not by lateness alone).
    app = BedrockAgentCoreApp()
    lock = asyncio.Lock()
    threads: set[str] = set()

    @app.entrypoint
    async def handler(payload: Any) -> str:
        async with lock:
            await asyncio.sleep(0.005)
        threads.add(threading.current_thread().name)
        return "ok"

    with serve(app) as url, httpx.Client(base_url=url, timeout=20) as client:

        def call(_: int) -> Any:
            return client.post("/invocations", json={}).json()

        with concurrent.futures.ThreadPoolExecutor(12) as callers:
            results = list(callers.map(call, range(24)))
    assert results == ["ok"] * 24
    assert len(threads) == 1
