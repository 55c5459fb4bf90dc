"""The percent-decoded request path uvicorn puts in `scope["path"]`, decoded once per distinct path.

uvicorn's httptools protocol (0.55) decodes every request path that has a `%` with
`urllib.parse.unquote`, a Python loop over the path's pieces. Every InvokeAgentRuntime path has
them (boto3 sends the runtime's ARN percent-encoded), and clients call the same few paths over and
over, so `install` gives that module a `urllib.parse.unquote` that remembers its answers.

The answer is a pure function of the path's exact text, which is the cache's key: two spellings
of one path (`%3A` and `%3a`) are two entries, never one. Long paths are decoded each time, so
the cache's memory stays bounded whatever clients send. Nothing else changes: our own routing
reads the raw path (`operations.py`), and `scope["path"]` is what uvicorn made it before.
"""

from __future__ import annotations

import functools
import types
import urllib.parse

_CACHED_LENGTH = 512  # characters: an ARN-bearing path is ~150
_ENTRIES = 1024


@functools.lru_cache(maxsize=_ENTRIES)
def _remembered(path: str) -> str:
    return urllib.parse.unquote(path)


def unquote(path: str) -> str:
    """`urllib.parse.unquote(path)`, remembered for paths up to a bounded length."""
    if len(path) <= _CACHED_LENGTH:
        return _remembered(path)
    return urllib.parse.unquote(path)


def install() -> bool:
    """Give uvicorn's httptools protocol the remembering `unquote`; False when that module is not
    the one this was written against (it then decodes as it always did)."""
    try:
        from uvicorn.protocols.http import httptools_impl
    except ImportError:  # pragma: no cover - httptools is a dependency
        return False
    current = getattr(httptools_impl, "urllib", None)
    if isinstance(current, types.SimpleNamespace):
        return True  # installed already
    if current is not urllib:
        return False
    shim = types.SimpleNamespace(parse=types.SimpleNamespace(unquote=unquote))
    httptools_impl.urllib = shim  # type: ignore[attr-defined,assignment]  # the one name that module reads it by
    return True


__all__ = ["install", "unquote"]
