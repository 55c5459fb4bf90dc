"""The SigV4 canonical request, rebuilt from a request exactly as it came over the wire.

Paths and queries are the raw wire text (ASGI's `raw_path` and `query_string` decoded as
latin-1). The rules are botocore's `SigV4Auth` for rest-json services, which is what AWS checks:

- URI: dot segments and empty segments removed (botocore's `remove_dot_segments`), then the
  already percent-encoded path is percent-encoded again with only `/` and `~` kept, so an ARN
  sent as `arn%3Aaws%3A...%2Fid` is canonicalised as `arn%253Aaws%253A...%252Fid`.
- Query: each `name=value` pair decoded (`+` as space, like the server's own parsing) and
  re-encoded with only `A-Z a-z 0-9 - _ . ~` kept, sorted by name then value, joined by `&`.
  Decoding to bytes, not text, keeps distinct wire values distinct.
- Headers: the signed names in order, each `name:value` with every value trimmed and its inner
  whitespace runs collapsed, repeated headers joined by `,`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from urllib.parse import quote, unquote_to_bytes

from .errors import IncompleteSignature

_UNRESERVED = "-_.~"


def canonical_request(
    method: str,
    raw_path: str,
    query: str,
    headers: dict[str, list[str]],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    """The canonical request text; `query` is already canonical and `headers` has lower-case names."""
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            query,
            canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            payload_hash,
        ]
    )


# Clients call the same few paths (one per runtime) with the same query: both are pure functions
# of the wire text, worth computing once. Small LRUs: an unusual path costs an eviction at most.
@functools.lru_cache(maxsize=1024)
def canonical_uri(raw_path: str) -> str:
    """The canonical URI of a raw (still percent-encoded) request path."""
    return quote(_wire_bytes(_remove_dot_segments(raw_path) if raw_path else "/"), safe="/~")


def canonical_query(pairs: Sequence[tuple[bytes, bytes]]) -> str:
    """Decoded `(name, value)` pairs, encoded and sorted as SigV4 requires."""
    encoded = sorted((quote(name, safe=_UNRESERVED), quote(value, safe=_UNRESERVED)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


@functools.lru_cache(maxsize=1024)
def canonical_raw_query(raw_query: str) -> str:
    """`canonical_query` of a raw query string as it came over the wire."""
    return canonical_query(query_pairs(raw_query))


def query_pairs(raw_query: str) -> list[tuple[bytes, bytes]]:
    """The decoded `(name, value)` pairs of a raw query string, in wire order."""
    pairs = []
    for item in raw_query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((_decode(name), _decode(value)))
    return pairs


def canonical_headers(headers: dict[str, list[str]], signed_headers: Sequence[str]) -> str:
    """One `name:value\\n` line per signed header; a signed header the request lacks is an error."""
    lines = []
    for name in signed_headers:
        values = headers.get(name)
        if values is None:
            raise IncompleteSignature(f"The signed header {name!r} is not in the request.")
        if len(values) == 1:  # almost always: no generator to run
            lines.append(f"{name}:{' '.join(values[0].split())}\n")
        else:
            lines.append(f"{name}:{','.join(' '.join(value.split()) for value in values)}\n")
    return "".join(lines)


def _decode(text: str) -> bytes:
    return unquote_to_bytes(_wire_bytes(text.replace("+", " ")))


def _wire_bytes(text: str) -> bytes:
    # The server decodes wire bytes as latin-1, so this restores them exactly; text that never
    # came off a socket falls back to UTF-8 rather than failing.
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _remove_dot_segments(path: str) -> str:
    # botocore.utils.remove_dot_segments, which also drops empty segments ("//").
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and kept else ""
    return first + "/".join(kept) + last


__all__ = [
    "canonical_headers",
    "canonical_query",
    "canonical_raw_query",
    "canonical_request",
    "canonical_uri",
    "query_pairs",
]
