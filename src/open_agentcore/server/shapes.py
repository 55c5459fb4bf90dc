"""Records rendered in the JSON shapes boto3's `bedrock-agentcore-control` model expects."""

from __future__ import annotations

import datetime
from typing import Any

from open_agentcore.store import EndpointRecord, RuntimeRecord, VersionRecord


def timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def description_of(version: VersionRecord) -> str:
    """A version's own description: the one its create or update request gave, else empty."""
    description = version.config.get("description", "")
    return description if isinstance(description, str) else ""


def runtime_summary(runtime: RuntimeRecord, version: VersionRecord | None = None) -> dict[str, Any]:
    """ListAgentRuntimes: the runtime as its latest version (or `version`) describes it."""
    shown = version or runtime.version
    return {
        "agentRuntimeArn": runtime.arn,
        "agentRuntimeId": runtime.id,
        "agentRuntimeVersion": str(shown.version),
        "agentRuntimeName": runtime.name,
        "description": description_of(shown),
        "lastUpdatedAt": timestamp(runtime.updated_at),
        "status": runtime.status.value,
    }


def runtime_detail(runtime: RuntimeRecord, version: VersionRecord) -> dict[str, Any]:
    """GetAgentRuntime: the runtime with the configuration of the version asked for."""
    config = version.config
    body: dict[str, Any] = {
        "agentRuntimeArn": runtime.arn,
        "agentRuntimeName": runtime.name,
        "agentRuntimeId": runtime.id,
        "agentRuntimeVersion": str(version.version),
        "createdAt": timestamp(runtime.created_at),
        "lastUpdatedAt": timestamp(runtime.updated_at),
        "roleArn": config["roleArn"],
        "status": version.status.value,
        "lifecycleConfiguration": config["lifecycleConfiguration"],
        "agentRuntimeArtifact": config["agentRuntimeArtifact"],
        "protocolConfiguration": config["protocolConfiguration"],
        "environmentVariables": config.get("environmentVariables", {}),
        "requestHeaderConfiguration": config.get("requestHeaderConfiguration", {}),
        "description": description_of(version),
    }
    if version.failure_reason:
        body["failureReason"] = version.failure_reason
    for field in ("networkConfiguration", "authorizerConfiguration"):
        if field in config:
            body[field] = config[field]
    return body


def version_summary(runtime: RuntimeRecord, version: VersionRecord) -> dict[str, Any]:
    return {
        **runtime_summary(runtime, version),
        "status": version.status.value,
        "lastUpdatedAt": timestamp(version.created_at),
    }


def endpoint_detail(runtime: RuntimeRecord, endpoint: EndpointRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": endpoint.name,
        "targetVersion": str(endpoint.target_version),
        "agentRuntimeEndpointArn": endpoint.arn,
        "agentRuntimeArn": runtime.arn,
        "status": endpoint.status.value,
        "id": f"{runtime.id}-{endpoint.name}",
        "description": endpoint.description,
        "createdAt": timestamp(endpoint.created_at),
        "lastUpdatedAt": timestamp(endpoint.updated_at),
    }
    if endpoint.live_version is not None:
        body["liveVersion"] = str(endpoint.live_version)
    return body


__all__ = [
    "description_of",
    "endpoint_detail",
    "runtime_detail",
    "runtime_summary",
    "timestamp",
    "version_summary",
]
