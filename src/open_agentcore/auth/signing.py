"""Signing requests with SigV4, as botocore does, for clients that do not carry botocore (the CLI).

The verifier's own canonical-request code builds what is signed, so a request signed here is
checked by exactly the rules that sign it.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping
from urllib.parse import urlsplit

from .canonical import canonical_query, canonical_request, query_pairs
from .claims import ALGORITHM
from .sigv4 import SERVICE, Credential, signature, signing_key


def sign_headers(
    method: str,
    url: str,
    credential: Credential,
    region: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    service: str = SERVICE,
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """`headers` plus `host`, `x-amz-date` and `authorization` (the body hash is signed, not sent,
    as botocore does for this service).

    `url` must already be percent-encoded as it will be sent (an ARN in a path as `%3A`, `%2F`).
    Every header given is signed; send them all, unchanged.
    """
    parts = urlsplit(url)
    moment = (now or datetime.datetime.now(datetime.timezone.utc)).astimezone(datetime.timezone.utc)
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    payload_hash = hashlib.sha256(body).hexdigest()
    signed = {name.lower(): value for name, value in (headers or {}).items()}
    signed.update({"host": parts.netloc, "x-amz-date": amz_date})
    names = sorted(signed)
    canonical = canonical_request(
        method,
        parts.path or "/",
        canonical_query(query_pairs(parts.query)),
        {name: [value] for name, value in signed.items()},
        names,
        payload_hash,
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    key = signing_key(credential.secret_access_key, amz_date[:8], region, service)
    signed["authorization"] = (
        f"{ALGORITHM} Credential={credential.access_key_id}/{scope}, SignedHeaders={';'.join(names)}, "
        f"Signature={signature(key, amz_date, scope, canonical)}"
    )
    return signed


__all__ = ["sign_headers"]
