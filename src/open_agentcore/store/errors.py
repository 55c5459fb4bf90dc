"""What the store can refuse, one type per failure a caller can act on."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store failure."""


class RuntimeNotFound(StoreError):
    """No runtime with that id (or it was deleted)."""


class VersionNotFound(StoreError):
    """The runtime has no such version."""


class EndpointNotFound(StoreError):
    """The runtime has no endpoint of that name."""


class RuntimeNameConflict(StoreError):
    """Another runtime already has that name."""


class EndpointNameConflict(StoreError):
    """The runtime already has an endpoint of that name."""


class InvalidPaginationToken(StoreError):
    """A `nextToken` this store did not issue."""


class SchemaTooNew(StoreError):
    """The database was written by a newer version of open-agentcore."""


__all__ = [
    "EndpointNameConflict",
    "EndpointNotFound",
    "InvalidPaginationToken",
    "RuntimeNameConflict",
    "RuntimeNotFound",
    "SchemaTooNew",
    "StoreError",
    "VersionNotFound",
]
