"""JSON log lines: `runtime/logs.py`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bedrock_agentcore.runtime.context import BedrockAgentCoreContext
from bedrock_agentcore.runtime.logs import RequestContextFormatter
from tests.conftest import AgentProcess


def _format(record: logging.LogRecord) -> dict[str, object]:
    return json.loads(RequestContextFormatter().format(record))


def test_fields_of_a_plain_line_outside_a_request() -> None:
    record = logging.LogRecord("my.logger", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    line = _format(record)
    assert set(line) == {"timestamp", "level", "message", "logger"}
    assert line["message"] == "hello world" and line["level"] == "INFO" and line["logger"] == "my.logger"
    assert str(line["timestamp"]).endswith("Z")


def test_a_line_inside_a_request_with_an_exception() -> None:
    BedrockAgentCoreContext.set_request_context("req-1", "sess-1")
    try:
        try:
            raise KeyError("missing")
        except KeyError:
            record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
        line = _format(record)
    finally:
        BedrockAgentCoreContext.set_request_context("", None)
    assert line["requestId"] == "req-1" and line["sessionId"] == "sess-1"
    assert line["errorType"] == "KeyError" and line["errorMessage"] == "'missing'"
    assert isinstance(line["stackTrace"], list) and "KeyError" in line["stackTrace"][-1]


def test_configure_json_logging_gives_user_loggers_the_same_format() -> None:
    script = textwrap.dedent(
        """
        import logging
        from bedrock_agentcore import BedrockAgentCoreApp, configure_json_logging
        from starlette.testclient import TestClient

        configure_json_logging()
        configure_json_logging()  # idempotent: still one line per record
        app = BedrockAgentCoreApp()
        log = logging.getLogger("my_agent")

        @app.entrypoint
        def handler(payload):
            log.info("thinking about %s", payload["q"])
            return "ok"

        with TestClient(app) as client:
            client.post("/invocations", json={"q": "tea"},
                        headers={"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "s-42"})
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["logger"] == "my_agent"]
    assert len(mine) == 1
    assert mine[0]["message"] == "thinking about tea" and mine[0]["sessionId"] == "s-42"


# The invocation line, from a real agent process ------------------------------------------------

SERVED = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    if payload.get("fail"):
        raise ValueError("no good")
    if payload.get("stream"):
        return (n for n in range(2))
    return {"ok": True}


if __name__ == "__main__":
    app.run()
"""
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
REQUEST_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id"


def invocation_lines(log: str) -> list[dict[str, Any]]:
    """The JSON lines of the log that end an invocation (they carry `outcome`)."""
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return [line for line in lines if "outcome" in line]


@pytest.fixture
def served(agent_process: Callable[..., AgentProcess], tmp_path: Path) -> AgentProcess:
    script = tmp_path / "agent.py"
    script.write_text(SERVED)
    return agent_process(script)


def invoke(agent: AgentProcess, body: bytes, request_id: str) -> httpx.Response:
    headers = {SESSION_HEADER: "sess-1", REQUEST_HEADER: request_id, "content-type": "application/json"}
    return httpx.post(agent.url + "/invocations", content=body, headers=headers, timeout=30)


def test_each_invocation_writes_one_line_with_its_ids_outcome_and_duration(served: AgentProcess) -> None:
    assert invoke(served, b'{"a": 1}', "req-ok").status_code == 200
    assert invoke(served, b'{"stream": 1}', "req-stream").status_code == 200
    assert invoke(served, b'{"fail": 1}', "req-fail").status_code == 500
    assert invoke(served, b"not json", "req-bad").status_code == 400
    lines = {line["requestId"]: line for line in invocation_lines(served.log())}
    assert sorted(lines) == ["req-bad", "req-fail", "req-ok", "req-stream"]
    expected = {
        "req-ok": ("INFO", "success"), "req-stream": ("INFO", "streaming"),
        "req-fail": ("ERROR", "error"), "req-bad": ("WARNING", "invalid_request"),
    }  # fmt: skip
    for request_id, (level, outcome) in expected.items():
        line = lines[request_id]
        assert (line["level"], line["outcome"], line["sessionId"]) == (level, outcome, "sess-1")
        assert line["logger"] == "bedrock_agentcore.app"
        assert isinstance(line["durationMs"], float) and line["durationMs"] >= 0
        assert line["timestamp"].endswith("Z")
    assert lines["req-fail"]["errorType"] == "ValueError" and lines["req-fail"]["errorMessage"] == "no good"


def test_the_line_is_not_written_when_info_is_off_for_the_app_logger(
    agent_process: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    script = tmp_path / "quiet.py"
    quiet = "import logging\nlogging.getLogger('bedrock_agentcore.app').setLevel(logging.WARNING)\n"
    script.write_text(SERVED.replace("if __name__", quiet + "if __name__"))
    agent = agent_process(script)
    assert invoke(agent, b"{}", "req-quiet").status_code == 200
    assert invoke(agent, b'{"fail": 1}', "req-loud").status_code == 500
    assert [line["requestId"] for line in invocation_lines(agent.log())] == ["req-loud"]
