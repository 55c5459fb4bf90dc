"""`/ping`, async tasks, forced status and the debug actions: `runtime/health.py`, `runtime/actions.py`."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from starlette.testclient import TestClient

from bedrock_agentcore import BedrockAgentCoreApp, PingStatus


def test_ping_is_healthy_with_a_timestamp() -> None:
    with TestClient(BedrockAgentCoreApp()) as client:
        body = client.get("/ping").json()
    assert body["status"] == "Healthy"
    assert isinstance(body["time_of_last_update"], int)


def test_registered_tasks_make_the_app_busy_until_completed() -> None:
    app = BedrockAgentCoreApp()
    with TestClient(app) as client:
        first = app.add_async_task("index", {"file": "a.csv"})
        second = app.add_async_task("embed")
        assert client.get("/ping").json()["status"] == "HealthyBusy"
        info = app.get_async_task_info()
        assert info["active_count"] == 2
        assert sorted(job["name"] for job in info["running_jobs"]) == ["embed", "index"]
        assert app.complete_async_task(first) is True
        assert client.get("/ping").json()["status"] == "HealthyBusy"
        assert app.complete_async_task(second) is True
        assert client.get("/ping").json()["status"] == "Healthy"
        assert app.complete_async_task(second) is False


def test_time_of_last_update_moves_only_when_the_status_changes() -> None:
    app = BedrockAgentCoreApp()
    app.tasks.last_status_change = 1000.0
    assert app.tasks.body(app.get_current_ping_status()).endswith(b":1000}")
    app.add_async_task("job")
    assert app.get_current_ping_status() is PingStatus.HEALTHY_BUSY
    assert app.tasks.last_status_change > 1000.0


def test_async_task_decorator_marks_busy_while_the_coroutine_runs() -> None:
    app = BedrockAgentCoreApp()
    running = threading.Event()
    finish = asyncio.Event()
    statuses: list[str] = []

    @app.async_task
    async def background(seconds: int) -> int:
        running.set()
        await finish.wait()
        return seconds

    async def scenario() -> int:
        task = asyncio.ensure_future(background(3))
        await asyncio.sleep(0)
        statuses.append(app.get_current_ping_status().value)
        finish.set()
        result = await task
        statuses.append(app.get_current_ping_status().value)
        return result

    assert asyncio.run(scenario()) == 3
    assert statuses == ["HealthyBusy", "Healthy"]
    assert background.__name__ == "background"


def test_async_task_refuses_sync_functions() -> None:
    app = BedrockAgentCoreApp()
    with pytest.raises(ValueError, match="async"):
        app.async_task(lambda: None)


def test_async_ping_handler_is_refused_at_registration() -> None:
    app = BedrockAgentCoreApp()

    async def health() -> str:
        return "Healthy"

    with pytest.raises(TypeError, match="plain function"):
        app.ping(health)


def test_precedence_forced_then_custom_then_automatic() -> None:
    app = BedrockAgentCoreApp()
    custom = {"status": PingStatus.HEALTHY_BUSY}

    @app.ping
    def health() -> Any:
        return custom["status"]

    with TestClient(app) as client:
        assert client.get("/ping").json()["status"] == "HealthyBusy"
        custom["status"] = "Healthy"  # the string value is accepted too
        assert client.get("/ping").json()["status"] == "Healthy"
        app.force_ping_status(PingStatus.HEALTHY_BUSY)
        assert client.get("/ping").json()["status"] == "HealthyBusy"
        app.clear_forced_ping_status()
        assert client.get("/ping").json()["status"] == "Healthy"


def test_a_failing_custom_ping_handler_falls_back_to_automatic() -> None:
    app = BedrockAgentCoreApp()

    @app.ping
    def health() -> Any:
        raise RuntimeError("broken probe")

    with TestClient(app) as client:
        assert client.get("/ping").json()["status"] == "Healthy"
        app.add_async_task("job")
        assert client.get("/ping").json()["status"] == "HealthyBusy"


def _debug_client() -> tuple[BedrockAgentCoreApp, TestClient]:
    app = BedrockAgentCoreApp(debug=True)

    @app.entrypoint
    def handler(payload: Any) -> Any:
        return {"handler_saw": payload}

    return app, TestClient(app)


def _action(client: TestClient, name: str) -> Any:
    return client.post("/invocations", json={"_agent_core_app_action": name})


def test_debug_actions_inspect_and_force_the_status() -> None:
    app, client = _debug_client()
    with client:
        assert _action(client, "ping_status").json()["status"] == "Healthy"
        app.add_async_task("crawl")
        jobs = _action(client, "job_status").json()
        assert jobs["active_count"] == 1 and jobs["running_jobs"][0]["name"] == "crawl"
        assert _action(client, "force_healthy").json() == {"forced_status": "Healthy"}
        assert client.get("/ping").json()["status"] == "Healthy"
        assert _action(client, "force_busy").json() == {"forced_status": "HealthyBusy"}
        assert client.get("/ping").json()["status"] == "HealthyBusy"
        assert _action(client, "clear_forced_status").json() == {"forced_status": "Cleared"}
        assert _action(client, "ping_status").json()["status"] == "HealthyBusy"


def test_unknown_debug_action_is_400() -> None:
    _, client = _debug_client()
    with client:
        reply = _action(client, "reboot")
    assert reply.status_code == 400
    assert "reboot" in reply.json()["error"]


def test_without_debug_the_action_key_is_an_ordinary_payload_field() -> None:
    app = BedrockAgentCoreApp()

    @app.entrypoint
    def handler(payload: Any) -> Any:
        return {"handler_saw": payload}

    with TestClient(app) as client:
        reply = _action(client, "force_busy")
        assert reply.json() == {"handler_saw": {"_agent_core_app_action": "force_busy"}}
        assert client.get("/ping").json()["status"] == "Healthy"
