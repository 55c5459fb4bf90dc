"""Checking control-plane requests field by field, with messages that name the field."""

from __future__ import annotations

import re
from typing import Any

from open_agentcore.artifacts import BUCKET
from open_agentcore.auth import InvalidAuthorizerConfig, validate_authorizer_config

NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,47}\Z")
RUNTIME_ID = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,99}-[a-zA-Z0-9]{10}\Z")
_HEADER = re.compile(r"^(Authorization|X-Amzn-Bedrock-AgentCore-Runtime-Custom-[A-Za-z0-9-]+)\Z", re.I)
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}\Z")
PROTOCOLS = ("HTTP", "MCP", "A2A", "AGUI")
MAX_LIFECYCLE = 28800
# The service's own patterns (botocore's model of bedrock-agentcore-control).
ROLE_ARN = re.compile(r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+\Z", re.S)
_TAG_TEXT = re.compile(r"^[a-zA-Z0-9\s._:/=+@-]*$")
MAX_TAGS = 50
MAX_DESCRIPTION = 4096
MAX_TAG_KEYS = 200


class InvalidRequest(Exception):
    """A request field is missing or malformed; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _require(request: dict[str, Any], field: str, kind: type) -> Any:
    value = request.get(field)
    if value is None:
        raise InvalidRequest(field, f"{field} is required")
    if not isinstance(value, kind):
        raise InvalidRequest(field, f"{field} must be a {kind.__name__}")
    return value


def check_description(value: Any, field: str = "description") -> str | None:
    """A description as the service takes it: absent, or text of at most 4,096 characters."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise InvalidRequest(field, f"{field} must be a string of at most {MAX_DESCRIPTION} characters")
    return value


def check_name(value: Any, field: str = "agentRuntimeName") -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise InvalidRequest(field, f"{field} must match [a-zA-Z][a-zA-Z0-9_]{{0,47}}, got {value!r}")
    return value


def check_artifact(request: dict[str, Any]) -> dict[str, Any]:
    """The artifact must be code in our artifact store (container images need a container backend)."""
    artifact: dict[str, Any] = _require(request, "agentRuntimeArtifact", dict)
    if "containerConfiguration" in artifact:
        return artifact  # accepted here; the build fails it with a clear reason
    code = artifact.get("codeConfiguration")
    if not isinstance(code, dict):
        raise InvalidRequest("agentRuntimeArtifact", "agentRuntimeArtifact needs codeConfiguration")
    s3 = (code.get("code") or {}).get("s3") if isinstance(code.get("code"), dict) else None
    if not isinstance(s3, dict) or not isinstance(s3.get("prefix"), str):
        raise InvalidRequest(
            "agentRuntimeArtifact.codeConfiguration.code.s3", "code.s3.bucket and prefix are required"
        )
    if s3.get("bucket") != BUCKET:
        raise InvalidRequest(
            "agentRuntimeArtifact.codeConfiguration.code.s3.bucket",
            "code must be uploaded to this server (PUT /_agentcore/artifacts) and referenced as "
            f"bucket {BUCKET!r}",
        )
    entry = code.get("entryPoint")
    if not isinstance(entry, list) or not entry or not all(isinstance(e, str) and e for e in entry):
        raise InvalidRequest(
            "agentRuntimeArtifact.codeConfiguration.entryPoint", "entryPoint must list the file"
        )
    check_entrypoint(entry[0])
    return artifact


def check_entrypoint(entrypoint: str) -> str:
    """A relative path to a file inside the uploaded code: no `/` at the start, no `..` or empty
    segments, no backslash or NUL (the build and the worker resolve it again, symlinks included)."""
    field = "agentRuntimeArtifact.codeConfiguration.entryPoint"
    parts = entrypoint.split("/")
    if (
        entrypoint.startswith("/")
        or any(part in ("", "..") for part in parts)
        or any(c in entrypoint for c in "\\\0")
        or len(entrypoint) > 1024
    ):
        raise InvalidRequest(
            field, f"entryPoint {entrypoint[:200]!r} must be a relative path inside the uploaded code"
        )
    return entrypoint


def check_lifecycle(request: dict[str, Any], minimum: int) -> dict[str, int]:
    """idleRuntimeSessionTimeout and maxLifetime, each `minimum`..28800 s (defaults 900 / 28800)."""
    lifecycle = request.get("lifecycleConfiguration") or {}
    if not isinstance(lifecycle, dict):
        raise InvalidRequest("lifecycleConfiguration", "lifecycleConfiguration must be an object")
    result = {
        "idleRuntimeSessionTimeout": lifecycle.get("idleRuntimeSessionTimeout", 900),
        "maxLifetime": lifecycle.get("maxLifetime", MAX_LIFECYCLE),
    }
    for field, value in result.items():
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_LIFECYCLE:
            raise InvalidRequest(
                f"lifecycleConfiguration.{field}",
                f"{field} must be between {minimum} and {MAX_LIFECYCLE} seconds",
            )
    if result["idleRuntimeSessionTimeout"] > result["maxLifetime"]:
        raise InvalidRequest("lifecycleConfiguration", "idleRuntimeSessionTimeout cannot exceed maxLifetime")
    return result


def check_role_arn(value: Any) -> str:
    """An IAM role's ARN (`arn:aws:iam::<account>:role/<name>`), at most 2048 characters."""
    if not isinstance(value, str) or not ROLE_ARN.match(value) or len(value) > 2048:
        raise InvalidRequest(
            "roleArn",
            f"roleArn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {value!r:.200}",
        )
    return value


def _check_tag_key(key: Any, field: str) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= 128 or not _TAG_TEXT.match(key):
        raise InvalidRequest(
            field, f"tag key {key!r:.140} must be 1 to 128 letters, digits, spaces or _.:/=+@-"
        )
    if key.lower().startswith("aws:"):
        raise InvalidRequest(field, f"tag key {key!r:.140} uses the prefix aws:, which is reserved for AWS")
    return key


def check_tags(value: Any, field: str = "tags") -> dict[str, str]:
    """A tag map as the service takes it: at most 50 tags, keys of 1 to 128 and values of 0 to 256 characters
    of letters, digits, spaces and `_.:/=+@-`, and no key starting with the reserved `aws:`."""
    if not isinstance(value, dict):
        raise InvalidRequest(field, f"{field} must map tag keys to values")
    if len(value) > MAX_TAGS:
        raise InvalidRequest(field, f"{field} holds {len(value)} tags; a resource has at most {MAX_TAGS}")
    for key, text in value.items():
        _check_tag_key(key, field)
        if not isinstance(text, str) or len(text) > 256 or not _TAG_TEXT.match(text):
            raise InvalidRequest(
                field, f"the value of tag {key!r} must be 0 to 256 letters, digits, spaces or _.:/=+@-"
            )
    return dict(value)


def check_tag_keys(value: Any, field: str = "tagKeys") -> list[str]:
    """Tag keys to remove: 1 to 200 of them, each a valid key."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_TAG_KEYS:
        raise InvalidRequest(field, f"{field} must list 1 to {MAX_TAG_KEYS} tag keys")
    return [_check_tag_key(key, field) for key in value]


def check_configuration(request: dict[str, Any], minimum_lifecycle: int) -> dict[str, Any]:
    """The whole version configuration to store, with defaults filled in.

    Tags are not part of it: they belong to the runtime and change without a new version.
    """
    config: dict[str, Any] = {
        "agentRuntimeArtifact": check_artifact(request),
        "roleArn": check_role_arn(request.get("roleArn")),
        "lifecycleConfiguration": check_lifecycle(request, minimum_lifecycle),
        "protocolConfiguration": {"serverProtocol": "HTTP"},
    }
    protocol = (request.get("protocolConfiguration") or {}).get("serverProtocol", "HTTP")
    if protocol not in PROTOCOLS:
        raise InvalidRequest(
            "protocolConfiguration.serverProtocol", f"serverProtocol must be one of {PROTOCOLS}"
        )
    config["protocolConfiguration"] = {"serverProtocol": protocol}
    variables = request.get("environmentVariables") or {}
    if not isinstance(variables, dict) or len(variables) > 50:
        raise InvalidRequest(
            "environmentVariables", "environmentVariables must map at most 50 names to values"
        )
    for key, value in variables.items():
        if not _ENV_KEY.match(key) or not isinstance(value, str):
            raise InvalidRequest(
                "environmentVariables", f"environment variable {key!r} is not a valid name/value"
            )
    config["environmentVariables"] = variables
    allowlist = (request.get("requestHeaderConfiguration") or {}).get("requestHeaderAllowlist", [])
    if not isinstance(allowlist, list) or not all(isinstance(h, str) and _HEADER.match(h) for h in allowlist):
        raise InvalidRequest(
            "requestHeaderConfiguration.requestHeaderAllowlist",
            "only Authorization and X-Amzn-Bedrock-AgentCore-Runtime-Custom-* headers can be allowlisted",
        )
    config["requestHeaderConfiguration"] = {"requestHeaderAllowlist": allowlist}
    if "description" in request:
        check_description(request["description"])
    for field in ("networkConfiguration", "authorizerConfiguration", "description"):
        if field in request:
            config[field] = request[field]
    jwt = jwt_authorizer_of(config)
    if jwt is not None:
        try:
            validate_authorizer_config(jwt)
        except InvalidAuthorizerConfig as error:
            raise InvalidRequest(error.field or "authorizerConfiguration", str(error)) from None
    elif config.get("authorizerConfiguration") not in (None, {}):
        raise InvalidRequest(
            "authorizerConfiguration", "authorizerConfiguration supports customJWTAuthorizer only"
        )
    return config


def jwt_authorizer_of(config: dict[str, Any]) -> dict[str, Any] | None:
    """The version's `customJWTAuthorizer`, when it has one: invocations then carry bearer tokens."""
    authorizer = config.get("authorizerConfiguration") or {}
    jwt = authorizer.get("customJWTAuthorizer") if isinstance(authorizer, dict) else None
    return jwt if isinstance(jwt, dict) else None


__all__ = [
    "MAX_TAGS",
    "NAME",
    "RUNTIME_ID",
    "InvalidRequest",
    "check_configuration",
    "check_name",
    "check_role_arn",
    "check_tag_keys",
    "check_tags",
]
