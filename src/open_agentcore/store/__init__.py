"""Persistent state of the runtime server: runtimes, immutable versions, endpoints (SQLAlchemy 2)."""

from .errors import (
    EndpointNameConflict,
    EndpointNotFound,
    InvalidPaginationToken,
    RuntimeNameConflict,
    RuntimeNotFound,
    SchemaTooNew,
    StoreError,
    VersionNotFound,
)
from .records import (
    DEFAULT_ENDPOINT,
    EndpointRecord,
    EndpointStatus,
    Page,
    RuntimeRecord,
    RuntimeStatus,
    VersionRecord,
)
from .repository import Store

__all__ = [
    "DEFAULT_ENDPOINT",
    "EndpointNameConflict",
    "EndpointNotFound",
    "EndpointRecord",
    "EndpointStatus",
    "InvalidPaginationToken",
    "Page",
    "RuntimeNameConflict",
    "RuntimeNotFound",
    "RuntimeRecord",
    "RuntimeStatus",
    "SchemaTooNew",
    "Store",
    "StoreError",
    "VersionNotFound",
    "VersionRecord",
]
