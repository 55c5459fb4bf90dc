"""The records the store hands out: frozen snapshots, never live database objects.

Every JSON value in a record (a configuration, a policy, worker info) is the caller's own copy:
changing it changes nothing stored.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

DEFAULT_ENDPOINT = "DEFAULT"


class RuntimeStatus(str, enum.Enum):
    """The status of a runtime, and of each of its versions."""

    CREATING = "CREATING"
    CREATE_FAILED = "CREATE_FAILED"
    READY = "READY"
    UPDATING = "UPDATING"
    UPDATE_FAILED = "UPDATE_FAILED"
    DELETING = "DELETING"


class EndpointStatus(str, enum.Enum):
    """The status of an endpoint: READY once the version it targets is built."""

    CREATING = "CREATING"
    CREATE_FAILED = "CREATE_FAILED"
    READY = "READY"
    UPDATING = "UPDATING"
    UPDATE_FAILED = "UPDATE_FAILED"
    DELETING = "DELETING"


class SessionState(str, enum.Enum):
    """Where a session's worker is in its life."""

    STARTING = "STARTING"
    ACTIVE = "ACTIVE"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


@dataclass(frozen=True)
class VersionRecord:
    """One version: the whole configuration as the client sent it (never changes), plus its build.

    `config` holds the request's fields (`agentRuntimeArtifact`, `roleArn`, `networkConfiguration`,
    `protocolConfiguration`, `lifecycleConfiguration`, `environmentVariables`, ...) as given.
    """

    runtime_id: str
    version: int
    config: dict[str, Any]
    status: RuntimeStatus
    failure_reason: str | None
    artifact_key: str | None
    environment_hash: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True)
class RuntimeRecord:
    """A runtime, with the version it is described at (the latest unless another was asked for).

    `status` and `failure_reason` are the runtime's; the version's own are on `version`.
    """

    id: str
    name: str
    arn: str
    status: RuntimeStatus
    latest_version: int
    failure_reason: str | None
    description: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    version: VersionRecord


@dataclass(frozen=True)
class EndpointRecord:
    """A named endpoint: `target_version` is what it should serve, `live_version` what it serves now.

    `live_version` is None until a version it targets is READY. `DEFAULT` follows the newest READY
    version by itself.
    """

    runtime_id: str
    name: str
    arn: str
    target_version: int
    live_version: int | None
    status: EndpointStatus
    description: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True)
class SessionRecord:
    """A runtime session and the worker that holds it (`worker`: pid, socket path, host/port, ...)."""

    runtime_id: str
    session_id: str
    endpoint: str | None
    version: int | None
    state: SessionState
    backend: str
    worker: dict[str, Any]
    created_at: datetime.datetime
    last_activity_at: datetime.datetime
    ended_at: datetime.datetime | None
    end_reason: str | None
    # The principal that created the session (`key:<principal>` or `token:<subject>`); None when
    # it was recorded before sessions had owners.
    owner: str | None = None


@dataclass(frozen=True)
class AccessKeyRecord:
    """An access key for SigV4; `secret` is kept as given because verifying a signature needs it."""

    access_key_id: str
    secret: str
    principal: str
    policy: dict[str, Any] | None
    created_at: datetime.datetime
    revoked_at: datetime.datetime | None

    @property
    def active(self) -> bool:
        """False once the key is revoked."""
        return self.revoked_at is None

    def __repr__(self) -> str:
        # The secret stays out of logs and tracebacks.
        return (
            f"AccessKeyRecord(access_key_id={self.access_key_id!r}, principal={self.principal!r}, "
            f"revoked_at={self.revoked_at!r})"
        )


@dataclass(frozen=True)
class ResourcePolicyRecord:
    """The resource-based policy attached to a runtime."""

    runtime_id: str
    policy: dict[str, Any]
    updated_at: datetime.datetime


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing, and the opaque token for the next one (None on the last page)."""

    items: list[T]
    next_token: str | None


__all__ = [
    "DEFAULT_ENDPOINT",
    "AccessKeyRecord",
    "EndpointRecord",
    "EndpointStatus",
    "Page",
    "ResourcePolicyRecord",
    "RuntimeRecord",
    "RuntimeStatus",
    "SessionRecord",
    "SessionState",
    "VersionRecord",
]
