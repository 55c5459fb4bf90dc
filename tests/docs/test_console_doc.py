"""docs/console.md says what the console does: its example policy is one the server accepts and
scopes as described, and its commands print what it says they print."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from open_agentcore.auth.policies import Decision, decide, parse_policy
from tests.conftest import REPO

DOC = (REPO / "docs" / "console.md").read_text()
ACCOUNT = "arn:aws:bedrock-agentcore:us-east-1:000000000000"


def test_the_example_policy_lists_all_runtimes_and_touches_only_the_named_one() -> None:
    block = re.search(r"```json\n(.*?)```", DOC, re.S)
    assert block is not None
    policy = parse_policy(json.loads(block.group(1)))
    user = "arn:aws:iam::000000000000:user/support"
    mine, other = f"{ACCOUNT}:runtime/support_bot-AbCdEfGhIj", f"{ACCOUNT}:runtime/billing-AbCdEfGhIj"
    assert (
        decide("bedrock-agentcore:ListAgentRuntimes", f"{ACCOUNT}:runtime/*", user, policy, [])
        is Decision.ALLOW
    )
    assert decide("bedrock-agentcore:InvokeAgentRuntime", mine, user, policy, []) is Decision.ALLOW
    assert decide("bedrock-agentcore:GetAgentRuntime", other, user, policy, []) is not Decision.ALLOW
    assert decide("bedrock-agentcore:InvokeAgentRuntime", other, user, policy, []) is not Decision.ALLOW


def test_agentcore_console_prints_the_documented_url() -> None:
    assert "agentcore console                    # prints http://127.0.0.1:8900/_agentcore/console/" in DOC
    done = subprocess.run(
        [sys.executable, "-m", "open_agentcore.cli", "console", "--endpoint-url", "http://127.0.0.1:8900"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == "http://127.0.0.1:8900/_agentcore/console/"


def test_the_pages_the_doc_lists_are_the_console_s_views() -> None:
    index = (REPO / "src" / "open_agentcore" / "console" / "static" / "index.html").read_text()
    views = re.findall(r'data-view="(\w+)">(\w+)<', index)
    for _, label in views:
        assert f"| {label} |" in DOC, label
