"""A Strands agent (with its scripted model) traced end to end: its model and tool spans arrive
at the server, under the SDK's invocation span, under the server's InvokeAgentRuntime span."""

from __future__ import annotations

from typing import Any

from tests.conftest import REPO, wait_until
from tests.server.conftest import Server
from tests.telemetry.conftest import traces, wait_for_spans

STRANDS_AGENT = (REPO / "examples" / "strands" / "agent.py").read_text()


def ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    names = []
    while span["parentSpanId"] in by_id:
        span = by_id[span["parentSpanId"]]
        names.append(span["name"])
    return names


def test_strands_model_and_tool_spans_arrive_under_the_server_span(server: Server) -> None:
    # No requirements file: the agent runs on the server's interpreter, which has strands-agents.
    created = server.deploy({"agent.py": STRANDS_AGENT}, "strands_traced")
    runtime_id, session = created["agentRuntimeId"], "strands-" + "s" * 30
    reply = server.data.invoke_agent_runtime(
        agentRuntimeArn=created["agentRuntimeArn"], payload=b'{"prompt": "count these four words"}',
        runtimeSessionId=session,
    )  # fmt: skip
    assert b"word_count" in reply["response"].read()

    listed = wait_until(lambda: traces(server, f"?runtime={runtime_id}&session={session}"), timeout=30)
    trace_id = listed[0]["traceId"]

    def complete(spans: list[dict[str, Any]]) -> bool:
        names = " ".join(span["name"] for span in spans)
        return "execute_tool word_count" in names and "chat" in names and "agentcore.invocation" in names

    spans = wait_for_spans(server, trace_id, complete)
    by_id = {span["spanId"]: span for span in spans}
    server_span = next(s for s in spans if s["name"] == "InvokeAgentRuntime")
    invocation = next(s for s in spans if s["name"] == "agentcore.invocation")
    assert invocation["parentSpanId"] == server_span["spanId"]
    assert invocation["service"] == runtime_id  # OTEL_SERVICE_NAME, as the server set it

    tool = next(s for s in spans if s["name"] == "execute_tool word_count")
    models = [s for s in spans if s["name"] == "chat"]
    assert len(models) == 2  # asked for the tool, then answered from its result
    for span in (tool, *models):
        chain = ancestors(span, by_id)
        assert chain[-2:] == ["agentcore.invocation", "InvokeAgentRuntime"], chain
        assert any(name.startswith("invoke_agent") for name in chain), chain
        # Stamped by the server from the worker's credential, whatever the agent's resource said.
        assert (span["attributes"]["agentcore.runtime.id"], span["attributes"]["agentcore.session.id"]) == (
            runtime_id,
            session,
        )
    assert tool["attributes"]["gen_ai.tool.name"] == "word_count"
