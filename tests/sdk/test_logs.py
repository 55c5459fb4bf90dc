"""JSON log lines: `runtime/logs.py`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

from bedrock_agentcore.runtime.context import BedrockAgentCoreContext
from bedrock_agentcore.runtime.logs import RequestContextFormatter


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
