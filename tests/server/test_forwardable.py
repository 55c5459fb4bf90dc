"""`server/data.py` `forwardable`: what of an invocation's raw headers is decoded for `worker_headers`."""

from __future__ import annotations

from open_agentcore.server.data import SESSION_HEADER, forwardable, worker_headers

_SIGNED_CALL = [
    (b"host", b"127.0.0.1:8900"),
    (b"authorization", b"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock-agentcore/aws4_request"),
    (b"x-amz-date", b"20260101T000000Z"),
    (b"x-amz-content-sha256", b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"x-amz-security-token", b"secret-token"),
    (b"content-length", b"2"),
    (b"content-type", b"application/json"),
    (b"x-amzn-bedrock-agentcore-runtime-custom-tenant", b"caf\xc3\xa9"),
    (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    (b"x-amzn-bedrock-agentcore-runtime-session-id", b"s-1"),
]


def test_only_headers_a_worker_may_be_sent_are_decoded_in_order() -> None:
    assert [name for name, _ in forwardable(_SIGNED_CALL)] == [
        "authorization",
        "content-type",
        "x-amzn-bedrock-agentcore-runtime-custom-tenant",
        "traceparent",
        SESSION_HEADER,
    ]


def test_values_are_the_wire_bytes_as_latin_1() -> None:
    decoded = dict(forwardable(_SIGNED_CALL))
    assert decoded["x-amzn-bedrock-agentcore-runtime-custom-tenant"] == "caf\xc3\xa9"


def test_without_an_allowlist_the_worker_gets_neither_signature_nor_custom_headers() -> None:
    sent = dict(worker_headers(forwardable(_SIGNED_CALL), "s-1", allowlist=[]))
    assert "authorization" not in sent
    assert not any(name.startswith("x-amz-") or name == "host" for name in sent)
    assert "x-amzn-bedrock-agentcore-runtime-custom-tenant" not in sent
    assert sent["traceparent"].startswith("00-0af7")


def test_an_allowlisted_custom_header_passes_and_the_security_token_never_does() -> None:
    allowlist = ["X-Amzn-Bedrock-AgentCore-Runtime-Custom-Tenant", "X-Amz-Security-Token"]
    sent = dict(worker_headers(forwardable(_SIGNED_CALL), "s-1", allowlist))
    assert sent["x-amzn-bedrock-agentcore-runtime-custom-tenant"] == "caf\xc3\xa9"
    assert "x-amz-security-token" not in sent
