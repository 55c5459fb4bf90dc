"""Control-plane details boto3 sees: tags, per-version descriptions, roleArn checks, through a real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.server.conftest import Server, artifact
from tests.server.test_policies import clients, error_of, new_key

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return payload
"""

ROLE = "arn:aws:iam::000000000000:role/agent"
UNKNOWN = "arn:aws:bedrock-agentcore:us-east-1:000000000000:runtime/gone-AAAAAAAAAA"


def refusal(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        call(**kwargs)
    error = refused.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


# Tags ---------------------------------------------------------------------------------------


def test_tags_given_at_creation_are_kept_and_changed_by_tag_and_untag(server: Server) -> None:
    arn = server.deploy({"agent.py": AGENT}, "tagged", tags={"team": "blue", "cost center": "42"})[
        "agentRuntimeArn"
    ]
    control = server.control
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "blue", "cost center": "42"}
    control.tag_resource(resourceArn=arn, tags={"team": "green", "stage": "prod"})
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {
        "team": "green", "cost center": "42", "stage": "prod",
    }  # fmt: skip
    control.untag_resource(resourceArn=arn, tagKeys=["cost center", "not-there"])
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "green", "stage": "prod"}


def test_a_runtime_without_tags_lists_none(server: Server) -> None:
    arn = server.deploy({"agent.py": AGENT}, "untagged")["agentRuntimeArn"]
    assert server.control.list_tags_for_resource(resourceArn=arn)["tags"] == {}


@pytest.mark.parametrize(
    ("tags", "words"),
    [
        ({"aws:owner": "me"}, "reserved"),
        ({"AWS:Owner": "me"}, "reserved"),
        ({"k" * 129: "v"}, "1 to 128"),
        ({"team": "v" * 257}, "0 to 256"),
        ({"team": "semi;colon"}, "0 to 256"),
        ({f"k{n}": "v" for n in range(51)}, "at most 50"),
    ],
    ids=["aws-prefix", "aws-prefix-any-case", "long-key", "long-value", "bad-character", "51-tags"],
)
def test_bad_tags_are_refused_with_a_validation_error(
    server: Server, tags: dict[str, str], words: str
) -> None:
    arn = server.deploy({"agent.py": AGENT}, "strict")["agentRuntimeArn"]
    code, message = refusal(server.control.tag_resource, resourceArn=arn, tags=tags)
    assert code == "ValidationException" and words in message
    code, message = refusal(
        server.control.create_agent_runtime, agentRuntimeName="badtags", roleArn=ROLE,
        agentRuntimeArtifact=artifact(server.upload({"agent.py": AGENT})), tags=tags,
    )  # fmt: skip
    assert code == "ValidationException" and words in message
    assert server.control.list_tags_for_resource(resourceArn=arn)["tags"] == {}


def test_more_than_50_tags_in_all_exceed_the_quota_and_change_nothing(server: Server) -> None:
    arn = server.deploy({"agent.py": AGENT}, "full", tags={f"a{n}": "v" for n in range(30)})[
        "agentRuntimeArn"
    ]
    code, message = refusal(
        server.control.tag_resource, resourceArn=arn, tags={f"b{n}": "v" for n in range(21)}
    )
    assert code == "ServiceQuotaExceededException" and "at most 50" in message
    assert len(server.control.list_tags_for_resource(resourceArn=arn)["tags"]) == 30


def test_untagging_with_a_reserved_key_is_refused(server: Server) -> None:
    arn = server.deploy({"agent.py": AGENT}, "untagbad")["agentRuntimeArn"]
    code, _ = refusal(server.control.untag_resource, resourceArn=arn, tagKeys=["aws:cloudformation:stack"])
    assert code == "ValidationException"


def test_tags_of_an_unknown_or_foreign_resource_are_not_found(server: Server) -> None:
    assert (
        refusal(server.control.list_tags_for_resource, resourceArn=UNKNOWN)[0] == "ResourceNotFoundException"
    )
    assert refusal(server.control.tag_resource, resourceArn=UNKNOWN, tags={"a": "b"})[0] == (
        "ResourceNotFoundException"
    )
    gateway = "arn:aws:bedrock-agentcore:us-east-1:000000000000:gateway/gw-AAAAAAAAAA"
    assert (
        refusal(server.control.list_tags_for_resource, resourceArn=gateway)[0] == "ResourceNotFoundException"
    )
    other_region = UNKNOWN.replace("us-east-1", "eu-west-1")
    assert refusal(server.control.list_tags_for_resource, resourceArn=other_region)[0] == (
        "ResourceNotFoundException"
    )


def test_a_deleted_runtimes_tags_go_with_it(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "short", tags={"team": "blue"})
    server.control.delete_agent_runtime(agentRuntimeId=created["agentRuntimeId"])
    again = server.deploy({"agent.py": AGENT}, "short")
    assert server.control.list_tags_for_resource(resourceArn=again["agentRuntimeArn"])["tags"] == {}
    code, _ = refusal(server.control.list_tags_for_resource, resourceArn=created["agentRuntimeArn"])
    assert code == "ResourceNotFoundException"


def test_tag_operations_need_their_own_iam_actions(server: Server, tmp_path: Path) -> None:
    arn = server.deploy({"agent.py": AGENT}, "guardedtags", tags={"team": "blue"})["agentRuntimeArn"]
    reader = new_key(
        server, tmp_path, "tagreader",
        {"Effect": "Allow", "Action": "bedrock-agentcore:ListTagsForResource", "Resource": arn},
    )  # fmt: skip
    control, _ = clients(server, reader)
    assert control.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "blue"}
    code, message = error_of(control.tag_resource, resourceArn=arn, tags={"team": "red"})
    assert code == "AccessDeniedException" and "bedrock-agentcore:TagResource" in message
    code, message = error_of(control.untag_resource, resourceArn=arn, tagKeys=["team"])
    assert code == "AccessDeniedException" and "bedrock-agentcore:UntagResource" in message
    writer = new_key(
        server, tmp_path, "tagwriter",
        {"Effect": "Allow", "Action": ["bedrock-agentcore:TagResource", "bedrock-agentcore:UntagResource"],
         "Resource": arn},
    )  # fmt: skip
    control, _ = clients(server, writer)
    control.tag_resource(resourceArn=arn, tags={"team": "red"})
    assert error_of(control.list_tags_for_resource, resourceArn=arn)[0] == "AccessDeniedException"
    assert server.control.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "red"}


# Descriptions ---------------------------------------------------------------------------------


def test_each_version_is_listed_with_its_own_description(server: Server) -> None:
    created = server.deploy({"agent.py": AGENT}, "described", description="first cut")
    runtime_id = created["agentRuntimeId"]
    key = server.upload({"agent.py": AGENT})
    server.control.update_agent_runtime(
        agentRuntimeId=runtime_id, roleArn=ROLE, agentRuntimeArtifact=artifact(key), description="second cut"
    )
    server.wait_ready(runtime_id, "2")
    listed = server.control.list_agent_runtime_versions(agentRuntimeId=runtime_id)["agentRuntimes"]
    assert {v["agentRuntimeVersion"]: v["description"] for v in listed} == {
        "1": "first cut",
        "2": "second cut",
    }
    runtimes = server.control.list_agent_runtimes()["agentRuntimes"]
    assert [r["description"] for r in runtimes if r["agentRuntimeId"] == runtime_id] == ["second cut"]
    # An update that gives no description keeps the runtime's latest one.
    server.control.update_agent_runtime(
        agentRuntimeId=runtime_id, roleArn=ROLE, agentRuntimeArtifact=artifact(key)
    )
    server.wait_ready(runtime_id, "3")
    listed = server.control.list_agent_runtime_versions(agentRuntimeId=runtime_id)["agentRuntimes"]
    assert {v["agentRuntimeVersion"]: v["description"] for v in listed} == {
        "1": "first cut", "2": "second cut", "3": "second cut",
    }  # fmt: skip
    first = server.control.get_agent_runtime(agentRuntimeId=runtime_id, agentRuntimeVersion="1")
    assert first["description"] == "first cut"


# roleArn --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role",
    [
        "agent-role",
        "arn:aws:iam::000000000000:user/agent",
        "arn:aws:s3:::bucket/role/agent",
        "arn:aws:iam::123:role/agent",
        "arn:aws:iam::000000000000:role/",
        "arn:aws:iam::000000000000:role/" + "r" * 2048,
    ],
    ids=["bare-name", "a-user", "not-iam", "short-account", "no-role-name", "too-long"],
)
def test_a_role_arn_that_is_not_an_iam_role_is_refused(server: Server, role: str) -> None:
    key = server.upload({"agent.py": AGENT})
    code, message = refusal(
        server.control.create_agent_runtime, agentRuntimeName="badrole", roleArn=role,
        agentRuntimeArtifact=artifact(key),
    )  # fmt: skip
    assert code == "ValidationException" and "roleArn" in message


@pytest.mark.parametrize(
    "role", ["arn:aws:iam::000000000000:role/path/to/agent", "arn:aws-cn:iam::000000000000:role/agent"]
)
def test_role_arns_with_paths_and_other_partitions_are_accepted(server: Server, role: str) -> None:
    key = server.upload({"agent.py": AGENT})
    created = server.control.create_agent_runtime(
        agentRuntimeName="goodrole", roleArn=role, agentRuntimeArtifact=artifact(key)
    )
    assert server.control.get_agent_runtime(agentRuntimeId=created["agentRuntimeId"])["roleArn"] == role


# A trailing newline ---------------------------------------------------------------------------
# A `$` in a pattern also matches before a final "\n": every name, id and version is checked to its
# very end, so a newline neither names a runtime nor reaches the store as part of an id.


def test_a_name_with_a_trailing_newline_is_refused(server: Server) -> None:
    key = server.upload({"agent.py": AGENT})
    code, message = refusal(
        server.control.create_agent_runtime, agentRuntimeName="newline\n", roleArn=ROLE,
        agentRuntimeArtifact=artifact(key), networkConfiguration={"networkMode": "PUBLIC"},
    )  # fmt: skip
    assert code == "ValidationException" and "agentRuntimeName" in message
    assert all(
        r["agentRuntimeName"] != "newline\n" for r in server.control.list_agent_runtimes()["agentRuntimes"]
    )


@pytest.mark.parametrize("path", ["/runtimes/{id}%0A/", "/runtimes/{id}/?version=1%0A"])
def test_an_id_or_version_with_a_trailing_newline_is_refused(server: Server, path: str) -> None:
    runtime_id = server.deploy({"agent.py": AGENT}, "plain")["agentRuntimeId"]
    reply = server.signed("GET", path.format(id=runtime_id))
    assert reply.status_code == 400, reply.text
    assert reply.headers["x-amzn-errortype"].startswith("ValidationException")


# Descriptions ---------------------------------------------------------------------------------
# boto3 checks the type before sending; other clients may not, and the store must never see it.


@pytest.mark.parametrize("description", [[], {"a": 1}, 7, "d" * 4097])
def test_a_description_that_is_not_short_text_is_refused_everywhere(
    server: Server, description: object
) -> None:
    runtime_id = server.deploy({"agent.py": AGENT}, "described")["agentRuntimeId"]
    body = json.dumps({"description": description}).encode()
    paths = [
        ("PUT", f"/runtimes/{runtime_id}/runtime-endpoints/DEFAULT/", body),
        ("PUT", f"/runtimes/{runtime_id}/runtime-endpoints/",
         json.dumps({"name": "other", "description": description}).encode()),
    ]  # fmt: skip
    for method, path, sent in paths:
        answer = server.signed(method, path, sent)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.headers["x-amzn-errortype"].startswith("ValidationException")
        assert "description" in answer.json()["message"]
    endpoints = server.control.list_agent_runtime_endpoints(agentRuntimeId=runtime_id)["runtimeEndpoints"]
    assert [endpoint["name"] for endpoint in endpoints] == ["DEFAULT"]
