"""The trace view in headless Chromium: an invocation's trace, listed and drawn as a waterfall.

It reads the span store's API (`GET /_agentcore/traces`, `GET /_agentcore/traces/{traceId}`), which
comes from the tracing work merged beside the console: on a server without it, these pages say
that tracing is not enabled, and this test fails until both are merged.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, wait_until
from tests.console.agents import HELLO, invoke_json
from tests.console.browser import Page
from tests.console.conftest import log_in
from tests.server.conftest import Server
from tests.telemetry.conftest import traced_server, wait_for_spans

STRANDS_AGENT = (REPO / "examples" / "strands" / "agent.py").read_text()


def traces_of(server: Server, runtime_id: str, session_id: str) -> list[dict[str, Any]]:
    reply = server.signed("GET", f"/_agentcore/traces?runtime={runtime_id}&session={session_id}&limit=10")
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()["traces"]
    return found


def test_an_invocation_s_trace_is_drawn_as_a_waterfall(
    server: Server, page: Page, shoot: Callable[[str], Path]
) -> None:
    created = server.deploy({"agent.py": HELLO}, "traced")
    runtime_id, session_id = created["agentRuntimeId"], str(uuid.uuid4())
    assert invoke_json(server, created["agentRuntimeArn"], session_id, {"name": "trace"}) == {
        "hello": "trace"
    }
    trace = wait_until(lambda: traces_of(server, runtime_id, session_id), timeout=30, interval=0.2)[0]
    detail = server.signed("GET", f"/_agentcore/traces/{trace['traceId']}").json()

    log_in(page, server.url)
    page.goto(f"{server.url}/_agentcore/console/#/traces")
    links = "[...document.querySelectorAll('#traces a.trace-link')]"
    page.wait_for(f"{links}.some(a => a.href.includes({json.dumps(trace['traceId'])}))")
    shoot("traces")
    page.goto(f"{server.url}/_agentcore/console/#/traces/{trace['traceId']}")
    page.wait_for("document.querySelectorAll('#waterfall .span-row').length > 0")
    rows = page.evaluate("[...document.querySelectorAll('#waterfall .span-row')].map(r => r.dataset.span)")
    assert sorted(rows) == sorted(span["spanId"] for span in detail["spans"])
    # The root span starts the waterfall and spans the whole trace.
    widths = page.evaluate(
        "[...document.querySelectorAll('#waterfall .span-bar')].map(b => parseFloat(b.style.width))"
    )
    assert widths[0] > 99
    page.click("#waterfall .span-row")
    page.wait_for("!!document.querySelector('#waterfall .span-detail:not([hidden])')")
    shoot("trace")

    # The session page lists the same invocation with its duration.
    page.goto(f"{server.url}/_agentcore/console/#/sessions/{runtime_id}/{session_id}")
    page.wait_for(f"!!document.querySelector('#invocations a[href$={json.dumps(trace['traceId'])}]')")


@pytest.fixture
def traced() -> Iterator[Server]:
    """A server whose workers export to its real port (the console's fixture does not tell them)."""
    data_dir = Path(tempfile.mkdtemp(prefix="oacv-", dir="/tmp"))
    try:
        with traced_server(data_dir) as running:
            yield running
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_a_strands_agents_model_and_tool_spans_are_drawn_apart_in_its_waterfall(
    traced: Server, page: Page, shoot: Callable[[str], Path]
) -> None:
    server = traced
    # The example Strands agent with its scripted model: it calls its word_count tool, then answers.
    created = server.deploy({"agent.py": STRANDS_AGENT}, "strands_in_console")
    runtime_id, session_id = created["agentRuntimeId"], "console-strands-" + "s" * 20
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=created["agentRuntimeArn"], payload=b'{"prompt": "count these four words"}',
        runtimeSessionId=session_id,
    )  # fmt: skip
    assert b"word_count" in reply["response"].read()
    trace = wait_until(lambda: traces_of(server, runtime_id, session_id), timeout=30, interval=0.2)[0]
    spans = wait_for_spans(
        server,
        trace["traceId"],
        lambda found: {"chat", "execute_tool word_count"} <= {s["name"] for s in found},
    )

    log_in(page, server.url)
    page.goto(f"{server.url}/_agentcore/console/#/traces/{trace['traceId']}")
    page.wait_for(f"document.querySelectorAll('#waterfall .span-row').length === {len(spans)}")
    drawn = page.evaluate(
        "[...document.querySelectorAll('#waterfall .span-row')].map(r => [r.title,"
        " r.querySelector('.span-bar').className])"
    )
    kinds = {name: bar.split() for name, bar in drawn}
    assert "model" in kinds["chat"] and "tool" in kinds["execute_tool word_count"]
    assert "server" in kinds["InvokeAgentRuntime"]
    # Nested as they ran: the tool's row comes after the agent's invocation row.
    names = [name for name, _ in drawn]
    assert (
        names.index("InvokeAgentRuntime")
        < names.index("agentcore.invocation")
        < names.index("execute_tool word_count")
    )
    shoot("trace-strands")
