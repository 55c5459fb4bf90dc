"""The runtime lifecycle service: validation, versions, background builds, invocation targets."""

from .service import RuntimeNotReady, RuntimePaths, RuntimeService, runtime_id_from
from .validation import InvalidRequest

__all__ = ["InvalidRequest", "RuntimeNotReady", "RuntimePaths", "RuntimeService", "runtime_id_from"]
