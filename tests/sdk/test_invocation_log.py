"""The invocation's log line: `runtime/invocation_log.py`, from real agent processes and servers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bedrock_agentcore import BedrockAgentCoreApp
from bedrock_agentcore.runtime.context import BedrockAgentCoreContext
from bedrock_agentcore.runtime.invocation_log import Outcome, log_invocation
from bedrock_agentcore.runtime.logs import APP_LOGGER, RequestContextFormatter, setup_app_logger
from tests.conftest import AgentProcess, wait_until

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
    # A success line is written at the end of the loop iteration that answered: wait for it.
    wait_until(lambda: len(invocation_lines(served.log())) >= 4, timeout=10, interval=0.02)
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
    assert invoke(agent, b"{}", "req-quiet-too").status_code == 200
    # The failure's line is written before its answer; a success line would follow the next one's.
    assert [line["requestId"] for line in invocation_lines(agent.log())] == ["req-loud"]


# The hand-built line is the formatter's line ---------------------------------------------------


@pytest.fixture
def app_logger_stream() -> Iterator[io.StringIO]:
    """The SDK's own JSON handler on `bedrock_agentcore.app`, writing into a string."""
    logger = logging.getLogger(APP_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = setup_app_logger(debug=False).handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        for old in saved[0]:
            logger.addHandler(old)
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


ids = st.text(st.characters(codec="utf-8"), max_size=40)


# The fixture is reset by hand: the stream is emptied at the start of every example.
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request_id=ids, session_id=ids, outcome=st.sampled_from([Outcome.SUCCESS, Outcome.STREAMING]))
def test_the_fast_line_is_what_the_formatter_writes(
    app_logger_stream: io.StringIO, request_id: str, session_id: str, outcome: Outcome
) -> None:
    app_logger_stream.seek(0)
    app_logger_stream.truncate()
    BedrockAgentCoreContext.set_request_context(request_id, session_id or None)
    try:
        log_invocation(outcome, 0.0)
        fast = json.loads(app_logger_stream.getvalue())
        record = logging.LogRecord(APP_LOGGER, logging.INFO, __file__, 0, fast["message"], (), None)
        record.outcome, record.durationMs = fast["outcome"], fast["durationMs"]
        formatted = json.loads(RequestContextFormatter().format(record))
    finally:
        BedrockAgentCoreContext.set_request_context("", None)
    assert app_logger_stream.getvalue().count("\n") == 1
    assert list(fast) == list(formatted)  # the same fields, in the same order
    assert {k: v for k, v in fast.items() if k != "timestamp"} == {
        k: v for k, v in formatted.items() if k != "timestamp"
    }
    assert len(fast["timestamp"]) == len(formatted["timestamp"]) == len("2026-01-01T00:00:00.000Z")


def test_a_handler_of_your_own_gets_a_record_with_the_fields(serve: Any) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(APP_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    for handler in saved[0]:
        logger.removeHandler(handler)
    mine = Keep()
    logger.addHandler(mine)
    logger.setLevel(logging.INFO)
    app = BedrockAgentCoreApp()
    app.entrypoint(lambda payload: {"ok": True})
    try:
        with serve(app) as url:
            headers = {SESSION_HEADER: "sess-own", REQUEST_HEADER: "req-own"}
            assert httpx.post(url + "/invocations", json={}, headers=headers).status_code == 200
    finally:
        logger.removeHandler(mine)
        for old in saved[0]:
            logger.addHandler(old)
        logger.setLevel(saved[1])
        logger.propagate = saved[2]
    ended = [r for r in records if hasattr(r, "outcome")]
    assert len(ended) == 1
    assert (ended[0].outcome, ended[0].levelno) == ("success", logging.INFO)  # type: ignore[attr-defined]
    line = json.loads(RequestContextFormatter().format(ended[0]))
    assert line["message"].startswith("Invocation succeeded (") and line["durationMs"] >= 0
