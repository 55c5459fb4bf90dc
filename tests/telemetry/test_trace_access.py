"""Who may read traces: a key sees the traces of the runtimes its policy allows, and no others."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import wait_until
from tests.server.conftest import Server
from tests.server.test_access_keys import call, create
from tests.telemetry.conftest import traces

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    return {"traceparent": context.request.headers.get("traceparent")}
"""


def policy(action: str, *runtime_arns: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": list(runtime_arns)}],
    }


def invoked_trace(server: Server, arn: str) -> str:
    reply = server.data.invoke_agent_runtime(agentRuntimeArn=arn, payload=b"{}", runtimeSessionId="t" * 40)
    return str(json.loads(reply["response"].read())["traceparent"].split("-")[1])


def test_a_key_sees_only_the_traces_of_runtimes_its_policy_allows(server: Server) -> None:
    mine = server.deploy({"agent.py": AGENT}, "mine")
    theirs = server.deploy({"agent.py": AGENT}, "theirs")
    my_trace, their_trace = (
        invoked_trace(server, mine["agentRuntimeArn"]),
        invoked_trace(server, theirs["agentRuntimeArn"]),
    )
    wait_until(lambda: {my_trace, their_trace} <= {t["traceId"] for t in traces(server)}, timeout=30)

    allowed = mine["agentRuntimeArn"]
    actions = ["bedrock-agentcore:ListTraces", "bedrock-agentcore:GetTrace"]
    created = create(server, "reader", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": actions, "Resource": allowed},
    ]})  # fmt: skip
    key = (created["accessKeyId"], created["secretAccessKey"])

    listed = call(server, "GET", "/_agentcore/traces", key=key)
    assert listed.status_code == 200, listed.text
    seen = {t["traceId"] for t in listed.json()["traces"]}
    assert my_trace in seen and their_trace not in seen
    # Control-plane traces (of no runtime) are not shown to a key limited to one runtime either.
    assert all(t["runtimeId"] == mine["agentRuntimeId"] for t in listed.json()["traces"])

    assert (
        call(server, "GET", f"/_agentcore/traces?runtime={mine['agentRuntimeId']}", key=key).status_code
        == 200
    )
    refused = call(server, "GET", f"/_agentcore/traces?runtime={theirs['agentRuntimeId']}", key=key)
    assert refused.status_code == 403 and refused.headers["x-amzn-errortype"] == "AccessDeniedException"

    assert call(server, "GET", f"/_agentcore/traces/{my_trace}", key=key).status_code == 200
    assert call(server, "GET", f"/_agentcore/traces/{their_trace}", key=key).status_code == 403


def test_a_key_without_trace_actions_reads_nothing(server: Server) -> None:
    created = create(server, "invoker", policy("bedrock-agentcore:InvokeAgentRuntime", "*"))
    key = (created["accessKeyId"], created["secretAccessKey"])
    listed = call(server, "GET", "/_agentcore/traces", key=key)
    assert listed.status_code == 200 and listed.json()["traces"] == []
    assert call(server, "GET", "/_agentcore/traces?runtime=any-0123456789", key=key).status_code == 403
