"""Verifying AWS Signature Version 4: signed headers (every API call) and presigned URLs (WebSockets).

The canonical request is rebuilt from the path and query exactly as they came over the wire.
For this service botocore encodes the already percent-encoded path a second time when it signs
(`%3A` becomes `%253A`), sorts the encoded query pairs, and signs the SHA-256 of the body; a
presigned URL is signed over the hash of an empty body. Only the typed errors below ever escape.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "bedrock-agentcore"
MAX_SKEW = datetime.timedelta(minutes=5)
MAX_PRESIGNED_EXPIRY = 300
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

_AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")


@dataclass(frozen=True)
class Credential:
    """An access key the server knows, and the principal it belongs to."""

    access_key_id: str
    secret_access_key: str
    principal: str


KeyLookup = Callable[[str], "Credential | None"]


class SignatureError(Exception):
    """A request whose signature cannot be accepted; `code` and `status` are its AWS wire error."""

    code = "InvalidSignatureException"
    status = 403


class MissingAuthentication(SignatureError):
    code = "MissingAuthenticationTokenException"


class IncompleteSignature(SignatureError):
    code = "IncompleteSignatureException"
    status = 400


class UnrecognizedClient(SignatureError):
    code = "UnrecognizedClientException"


class SignatureMismatch(SignatureError):
    code = "InvalidSignatureException"


class RequestExpired(SignatureError):
    code = "InvalidSignatureException"


@dataclass(frozen=True)
class _Scope:
    access_key_id: str
    date: str
    region: str
    service: str

    @property
    def text(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def authorization_scheme(headers: Mapping[str, str], raw_query: str) -> str | None:
    """ "sigv4", "bearer", "presigned", or None: how a request claims to be authenticated."""
    value = headers.get("authorization", "")
    if value.startswith(ALGORITHM):
        return "sigv4"
    if value[:7].lower() == "bearer ":
        return "bearer"
    if "X-Amz-Signature=" in raw_query:
        return "presigned"
    return None


def _parse_scope(credential: str, service: str) -> _Scope:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise IncompleteSignature("Credential must be <access key>/<date>/<region>/<service>/aws4_request")
    if parts[3] != service:
        raise IncompleteSignature(f"Credential should be scoped to the service {service!r}, not {parts[3]!r}")
    return _Scope(parts[0], parts[1], parts[2], parts[3])


def parse_authorization(value: str) -> tuple[str, list[str], str]:
    """(credential, signed header names, signature) from an `Authorization: AWS4-HMAC-SHA256 ...` value."""
    algorithm, _, rest = value.partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignature(f"Authorization must use {ALGORITHM}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, field = part.strip().partition("=")
        if not equals or name in fields:
            raise IncompleteSignature("Authorization header is malformed")
        fields[name] = field
    try:
        credential, signed, signature = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
    except KeyError as missing:
        raise IncompleteSignature(f"Authorization header lacks {missing.args[0]}") from None
    names = signed.split(";")
    if not signature or not all(names) or names != sorted(names) or any(n != n.lower() for n in names):
        raise IncompleteSignature("SignedHeaders and Signature must be present and well formed")
    return credential, names, signature


def _amz_date(value: str | None) -> datetime.datetime:
    if value is None or not _AMZ_DATE.match(value):
        raise IncompleteSignature("X-Amz-Date must be present, as YYYYMMDDTHHMMSSZ")
    try:
        moment = datetime.datetime.strptime(value, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise IncompleteSignature("X-Amz-Date is not a valid date") from None
    return moment.replace(tzinfo=datetime.timezone.utc)


def _canonical_uri(raw_path: str) -> str:
    path = posixpath.normpath(raw_path) if raw_path not in ("", "/") else "/"
    if raw_path.endswith("/") and path != "/":
        path += "/"
    return quote(path, safe="/~")


def _canonical_query(pairs: Sequence[tuple[str, str]]) -> str:
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    pairs = []
    for item in raw_query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((unquote(name.replace("+", " ")), unquote(value.replace("+", " "))))
    return pairs


def _canonical_headers(headers: Mapping[str, str], names: Sequence[str]) -> str:
    lines = []
    for name in names:
        if name not in headers:
            raise IncompleteSignature(f"signed header {name!r} is missing from the request")
        lines.append(f"{name}:{' '.join(headers[name].split())}\n")
    return "".join(lines)


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _expected_signature(credential: Credential, scope: _Scope, amz_date: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope.text}\n{digest}"
    key = _signing_key(credential.secret_access_key, scope.date, scope.region, scope.service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _lookup(lookup: KeyLookup, access_key_id: str) -> Credential:
    credential = lookup(access_key_id)
    if credential is None:
        raise UnrecognizedClient("The security token included in the request is invalid.")
    return credential


def _lower(headers: Sequence[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    merged: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    return merged


def verify_headers(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]] | Mapping[str, str],
    payload_sha256: str,
    lookup: KeyLookup,
    *,
    service: str = SERVICE,
    now: datetime.datetime | None = None,
) -> Credential:
    """Check an `Authorization: AWS4-HMAC-SHA256` request; returns the caller's credential.

    `payload_sha256` is the hex SHA-256 of the body as received (the caller hashes it).
    """
    lower = _lower(headers)
    if "authorization" not in lower:
        raise MissingAuthentication("Missing Authentication Token")
    credential_text, names, signature = parse_authorization(lower["authorization"])
    scope = _parse_scope(credential_text, service)
    amz_date = lower.get("x-amz-date")
    moment = _amz_date(amz_date)
    assert amz_date is not None
    if moment.strftime("%Y%m%d") != scope.date:
        raise IncompleteSignature("Credential date does not match X-Amz-Date")
    if "host" not in names:
        raise IncompleteSignature("the host header must be signed")
    current = now or datetime.datetime.now(datetime.timezone.utc)
    if abs(current - moment) > MAX_SKEW:
        raise RequestExpired("Signature expired: the request time is more than 5 minutes from the server's")
    credential = _lookup(lookup, scope.access_key_id)
    canonical = "\n".join(
        [
            method.upper(),
            _canonical_uri(raw_path),
            _canonical_query(_query_pairs(raw_query)),
            _canonical_headers(lower, names),
            ";".join(names),
            payload_sha256,
        ]
    )
    if not hmac.compare_digest(_expected_signature(credential, scope, amz_date, canonical), signature):
        raise SignatureMismatch(
            "The request signature we calculated does not match the signature you provided."
        )
    return credential


def verify_presigned(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]] | Mapping[str, str],
    lookup: KeyLookup,
    *,
    service: str = SERVICE,
    now: datetime.datetime | None = None,
    max_expires: int = MAX_PRESIGNED_EXPIRY,
) -> Credential:
    """Check a URL presigned with SigV4 query parameters (`X-Amz-Signature` and friends)."""
    pairs = _query_pairs(raw_query)
    params: dict[str, str] = {}
    for name, value in pairs:
        if name.startswith("X-Amz-") and name in params:
            raise IncompleteSignature(f"{name} appears twice")
        params[name] = value
    required = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders")
    missing = [name for name in (*required, "X-Amz-Signature") if name not in params]
    if missing:
        raise IncompleteSignature(f"presigned URL lacks {', '.join(missing)}")
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignature(f"X-Amz-Algorithm must be {ALGORITHM}")
    scope = _parse_scope(params["X-Amz-Credential"], service)
    moment = _amz_date(params["X-Amz-Date"])
    if moment.strftime("%Y%m%d") != scope.date:
        raise IncompleteSignature("Credential date does not match X-Amz-Date")
    expires_text = params["X-Amz-Expires"]
    if not expires_text.isdigit() or not 1 <= int(expires_text) <= max_expires:
        raise IncompleteSignature(f"X-Amz-Expires must be between 1 and {max_expires} seconds")
    current = now or datetime.datetime.now(datetime.timezone.utc)
    if current > moment + datetime.timedelta(seconds=int(expires_text)):
        raise RequestExpired("Signature expired: the presigned URL is past its expiry")
    if moment - current > MAX_SKEW:
        raise RequestExpired("Signature not yet valid: X-Amz-Date is in the future")
    names = params["X-Amz-SignedHeaders"].split(";")
    if "host" not in names or names != sorted(names):
        raise IncompleteSignature("X-Amz-SignedHeaders must be sorted and include host")
    credential = _lookup(lookup, scope.access_key_id)
    canonical = "\n".join(
        [
            method.upper(),
            _canonical_uri(raw_path),
            _canonical_query([(k, v) for k, v in pairs if k != "X-Amz-Signature"]),
            _canonical_headers(_lower(headers), names),
            ";".join(names),
            EMPTY_SHA256,
        ]
    )
    expected = _expected_signature(credential, scope, params["X-Amz-Date"], canonical)
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        raise SignatureMismatch(
            "The request signature we calculated does not match the signature you provided."
        )
    return credential


__all__ = [
    "ALGORITHM",
    "MAX_PRESIGNED_EXPIRY",
    "SERVICE",
    "Credential",
    "IncompleteSignature",
    "KeyLookup",
    "MissingAuthentication",
    "RequestExpired",
    "SignatureError",
    "SignatureMismatch",
    "UnrecognizedClient",
    "authorization_scheme",
    "parse_authorization",
    "verify_headers",
    "verify_presigned",
]
