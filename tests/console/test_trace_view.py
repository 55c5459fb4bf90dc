"""The trace view in headless Chromium: an invocation's trace, listed and drawn as a waterfall.

It reads the span store's API (`GET /_agentcore/traces`, `GET /_agentcore/traces/{traceId}`), which
comes from the tracing work merged beside the console: on a server without it, these pages say
that tracing is not enabled, and this test fails until both are merged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import wait_until
from tests.console.agents import HELLO, invoke_json
from tests.console.browser import Page
from tests.console.conftest import log_in
from tests.server.conftest import Server


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
