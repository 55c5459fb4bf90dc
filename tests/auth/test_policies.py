"""IAM-style policy evaluation: wildcards, explicit deny, resource policies, and what is refused."""

from __future__ import annotations

import json

import pytest

from open_agentcore.auth.policies import Decision, Policy, PolicyError, decide, parse_policy

RUNTIME = "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/hello-AAAAAAAAAA"
OTHER = "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/other-BBBBBBBBBB"
ALICE = "arn:aws:iam::000000000000:user/alice"


def policy(*statements: dict[str, object], resource: bool = False) -> Policy:
    return parse_policy({"Version": "2012-10-17", "Statement": list(statements)}, resource_policy=resource)


def test_allow_matches_action_and_resource_with_wildcards() -> None:
    identity = policy(
        {"Effect": "Allow", "Action": "bedrock-agentcore:Invoke*", "Resource": "*:runtime/hello-*"}
    )
    assert decide("bedrock-agentcore:InvokeAgentRuntime", RUNTIME, ALICE, identity) is Decision.ALLOW
    assert decide("bedrock-agentcore:invokeagentruntime", RUNTIME, ALICE, identity) is Decision.ALLOW
    assert decide("bedrock-agentcore:InvokeAgentRuntime", OTHER, ALICE, identity) is Decision.IMPLICIT_DENY
    assert decide("bedrock-agentcore:DeleteAgentRuntime", RUNTIME, ALICE, identity) is Decision.IMPLICIT_DENY


def test_an_explicit_deny_wins_over_any_allow() -> None:
    identity = policy(
        {"Effect": "Allow", "Action": "bedrock-agentcore:*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["bedrock-agentcore:Delete*"], "Resource": RUNTIME},
    )
    assert decide("bedrock-agentcore:DeleteAgentRuntime", RUNTIME, ALICE, identity) is Decision.EXPLICIT_DENY
    assert decide("bedrock-agentcore:DeleteAgentRuntime", OTHER, ALICE, identity) is Decision.ALLOW
    resource = policy({"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}, resource=True)
    assert (
        decide("bedrock-agentcore:GetAgentRuntime", OTHER, ALICE, identity, [resource])
        is Decision.EXPLICIT_DENY
    )


def test_a_resource_policy_admits_the_principals_it_names() -> None:
    resource = policy(
        {"Effect": "Allow", "Principal": {"AWS": [ALICE]}, "Action": "bedrock-agentcore:InvokeAgentRuntime",
         "Resource": RUNTIME},
        resource=True,
    )  # fmt: skip
    action = "bedrock-agentcore:InvokeAgentRuntime"
    assert decide(action, RUNTIME, ALICE, None, [resource]) is Decision.ALLOW
    bob = "arn:aws:iam::000000000000:user/bob"
    assert decide(action, RUNTIME, bob, None, [resource]) is Decision.IMPLICIT_DENY


def test_a_question_mark_is_one_character_and_brackets_are_literal() -> None:
    identity = policy({"Effect": "Allow", "Action": "bedrock-agentcore:Get?gentRuntime", "Resource": "[x]*"})
    assert decide("bedrock-agentcore:GetAgentRuntime", "[x]abc", ALICE, identity) is Decision.ALLOW
    assert decide("bedrock-agentcore:GetAgentRuntime", "xabc", ALICE, identity) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("not json", "policy"),
        ({}, "policy"),
        ({"Statement": []}, "Statement"),
        ({"Statement": [{"Effect": "Maybe", "Action": "*"}]}, "Statement[0].Effect"),
        ({"Statement": [{"Effect": "Allow"}]}, "Statement[0].Action"),
        ({"Statement": [{"Effect": "Allow", "Action": "Invoke"}]}, "Statement[0].Action"),
        ({"Statement": [{"Effect": "Allow", "Action": "*", "Condition": {}}]}, "Statement[0].Condition"),
        ({"Statement": [{"Effect": "Allow", "Action": "*", "Principal": "*"}]}, "Statement[0].Principal"),
        ({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": []}]}, "Statement[0].Resource"),
        (json.dumps({"Statement": [{"Effect": "Allow", "Action": "*"}], "x": "y" * 30_000}), "policy"),
    ],
)
def test_malformed_policies_name_the_field(document: object, field: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(document)
    assert refused.value.field == field


def test_a_resource_policy_needs_a_principal() -> None:
    with pytest.raises(PolicyError, match="Principal"):
        parse_policy(
            {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}, resource_policy=True
        )
