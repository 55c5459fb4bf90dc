"""`POST /invocations`: payload parsing, results and errors: `runtime/invocations.py`."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.testclient import TestClient

from bedrock_agentcore import BedrockAgentCoreApp


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        formatter = logging.getLogger("bedrock_agentcore.app").handlers[0].formatter
        assert formatter is not None
        self.lines.append(json.loads(formatter.format(record)))


@pytest.fixture
def app_log() -> Iterator[list[dict[str, Any]]]:
    handler = _Lines()
    logger = logging.getLogger("bedrock_agentcore.app")
    BedrockAgentCoreApp()  # makes sure the JSON handler is installed
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def _app(handler: Any, debug: bool = False) -> TestClient:
    app = BedrockAgentCoreApp(debug=debug)
    app.entrypoint(handler)
    return TestClient(app)


def test_plain_dict_result_is_json() -> None:
    with _app(lambda payload: {"hello": payload["name"]}) as client:
        reply = client.post("/invocations", json={"name": "Alice"})
    assert reply.status_code == 200
    assert reply.json() == {"hello": "Alice"}


def test_handler_exception_is_500_with_message_and_a_json_log_line_with_the_stack(
    app_log: list[dict[str, Any]],
) -> None:
    def handler(payload: Any) -> Any:
        raise RuntimeError("model unavailable")

    with _app(handler) as client:
        reply = client.post(
            "/invocations", json={}, headers={"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "sess-9"}
        )
    assert reply.status_code == 500
    assert reply.json() == {"error": "model unavailable"}
    errors = [line for line in app_log if line["level"] == "ERROR"]
    assert errors, app_log
    assert errors[0]["errorType"] == "RuntimeError"
    assert errors[0]["errorMessage"] == "model unavailable"
    assert any("raise RuntimeError" in frame for frame in errors[0]["stackTrace"])
    assert errors[0]["sessionId"] == "sess-9"
    assert errors[0]["requestId"]


@pytest.mark.parametrize(
    "body", [b"{not json", b"", b"\xff\xfe", b'{"a": 1', b"[" * 100_000 + b"]" * 100_000]
)
def test_body_that_is_not_json_is_400(body: bytes) -> None:
    with _app(lambda payload: "unreachable") as client:
        reply = client.post("/invocations", content=body, headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"] == "Invalid JSON"


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("value", [[1, 2], "text", 42, None, True])
def test_json_that_is_not_an_object_reaches_the_handler_as_is(value: Any, debug: bool) -> None:
    with _app(lambda payload: {"got": payload}, debug=debug) as client:
        reply = client.post("/invocations", content=json.dumps(value))
    assert reply.json() == {"got": value}


def test_no_entrypoint_is_500_saying_so() -> None:
    with TestClient(BedrockAgentCoreApp()) as client:
        reply = client.post("/invocations", json={})
    assert reply.status_code == 500
    assert "@app.entrypoint" in reply.json()["error"]


def test_returned_response_passes_through() -> None:
    def handler(payload: Any) -> Any:
        if payload.get("text"):
            return PlainTextResponse("plain", status_code=201)
        return JSONResponse({"missing": True}, status_code=404, headers={"x-agent": "1"})

    with _app(handler) as client:
        reply = client.post("/invocations", json={})
        assert (reply.status_code, reply.json(), reply.headers["x-agent"]) == (404, {"missing": True}, "1")
        reply = client.post("/invocations", json={"text": True})
        assert (reply.status_code, reply.text) == (201, "plain")


@pytest.mark.parametrize("is_async", [False, True])
def test_http_exception_keeps_its_status(is_async: bool) -> None:
    def sync_handler(payload: Any) -> Any:
        raise HTTPException(status_code=422, detail="name is required")

    async def async_handler(payload: Any) -> Any:
        raise HTTPException(status_code=429, detail="slow down")

    with _app(async_handler if is_async else sync_handler) as client:
        reply = client.post("/invocations", json={})
    expected = (429, "slow down") if is_async else (422, "name is required")
    assert (reply.status_code, reply.json()) == (expected[0], {"error": expected[1]})


def test_other_methods_and_paths_are_refused() -> None:
    with _app(lambda payload: "x") as client:
        assert client.get("/invocations").status_code == 405
        assert client.post("/nowhere", json={}).status_code == 404


def test_a_failed_invocation_does_not_take_the_app_down() -> None:
    def handler(payload: Any) -> Any:
        if payload.get("fail"):
            raise ValueError("nope")
        return "fine"

    with _app(handler) as client:
        assert client.post("/invocations", json={"fail": True}).status_code == 500
        assert client.post("/invocations", json={}).json() == "fine"
        assert client.get("/ping").json()["status"] == "Healthy"


def test_a_result_that_cannot_be_encoded_is_a_500_not_a_crash() -> None:
    def handler(payload: Any) -> Any:
        loop: dict[str, Any] = {}
        loop["self"] = loop
        return loop

    with _app(handler) as client:
        reply = client.post("/invocations", json={})
        assert reply.status_code == 500 and reply.json()["error"]
        assert client.get("/ping").json()["status"] == "Healthy"
