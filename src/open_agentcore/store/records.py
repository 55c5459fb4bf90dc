"""The records the store hands out: immutable snapshots, never live database objects."""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Any


class RuntimeStatus(str, enum.Enum):
    CREATING = "CREATING"
    CREATE_FAILED = "CREATE_FAILED"
    READY = "READY"
    UPDATING = "UPDATING"
    UPDATE_FAILED = "UPDATE_FAILED"
    DELETING = "DELETING"


class EndpointStatus(str, enum.Enum):
    CREATING = "CREATING"
    CREATE_FAILED = "CREATE_FAILED"
    READY = "READY"
    UPDATING = "UPDATING"
    UPDATE_FAILED = "UPDATE_FAILED"
    DELETING = "DELETING"


DEFAULT_ENDPOINT = "DEFAULT"


@dataclass(frozen=True)
class RuntimeRecord:
    """A runtime as the control plane describes it (its latest version's configuration aside)."""

    id: str
    name: str
    arn: str
    status: RuntimeStatus
    latest_version: int
    failure_reason: str | None
    description: str
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclass(frozen=True)
class VersionRecord:
    """One immutable version: the whole configuration as the client sent it, plus its build state."""

    runtime_id: str
    version: int
    config: dict[str, Any]
    status: RuntimeStatus
    failure_reason: str | None
    created_at: datetime.datetime


@dataclass(frozen=True)
class EndpointRecord:
    """A named endpoint pinned to a version (`DEFAULT` follows the latest ready one)."""

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
class Page:
    """One page of a listing and the token for the next, if any."""

    items: list[Any]
    next_token: str | None


__all__ = [
    "DEFAULT_ENDPOINT",
    "EndpointRecord",
    "EndpointStatus",
    "Page",
    "RuntimeRecord",
    "RuntimeStatus",
    "VersionRecord",
]
