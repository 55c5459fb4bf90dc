"""A request's query parameters as the data-plane routes read them: parsed once per distinct query.

Clients call with the same query over and over (`?qualifier=DEFAULT`, or none), and parsing it
with Starlette's `QueryParams` is a noticeable share of an invocation's cost on the server.
"""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.types import Scope

_MAX_KNOWN = 1024
_known: dict[bytes, str | None] = {}


def qualifier_of(scope: Scope) -> str | None:
    """The request's `qualifier` parameter (the last one, when repeated), or None without one."""
    query: bytes = scope["query_string"]
    if not query:
        return None
    try:
        return _known[query]
    except KeyError:
        pass
    qualifier = QueryParams(query).get("qualifier")
    if len(_known) >= _MAX_KNOWN:
        _known.clear()  # anyone can send any query: bounded, and a clean start is cheap
    _known[query] = qualifier
    return qualifier


__all__ = ["qualifier_of"]
