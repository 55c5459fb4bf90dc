"""Verifying AWS Signature Version 4: signed headers (every API call) and presigned URLs (WebSockets).

Both verifiers take the request as it came over the wire (see `canonical.py` for how the
canonical request is rebuilt), return the caller's `Credential`, and raise only the typed errors
in `errors.py` (plus whatever the caller's own key lookup raises).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

from .canonical import canonical_query, canonical_raw_query, canonical_request, query_pairs
from .claims import ALGORITHM, SignatureClaim, parse_amz_date, parse_authorization, parse_presigned_query
from .errors import (
    IncompleteSignature,
    MissingAuthentication,
    RequestExpired,
    SignatureMismatch,
    UnrecognizedClient,
    WrongRegion,
)

SERVICE = "bedrock-agentcore"
MAX_SKEW = datetime.timedelta(minutes=5)
MAX_PRESIGNED_EXPIRY = 300
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


class HeaderValues(dict[str, list[str]]):
    """A request's header values grouped by lower-case name, in the order received: what the
    verifiers build from any `Headers` they are given, made once per request by `header_values`
    so that choosing the scheme and checking the signature do not each walk the headers again.

    `ascii` is True when `header_values` saw no byte past ASCII in any value, so that no signed
    value can need reading as UTF-8 (`_utf8_view`); False when unknown or not so."""

    ascii = False


Headers = Sequence[tuple[str, str]] | Mapping[str, str] | HeaderValues
AuthScheme = Literal["sigv4", "bearer", "presigned"]

_PRESIGNED_MARKERS = frozenset({b"X-Amz-Algorithm", b"X-Amz-Credential", b"X-Amz-Signature"})
_MISMATCH = "The request signature we calculated does not match the signature you provided."


@dataclass(frozen=True)
class Credential:
    """An access key the server knows, and the principal it belongs to (its repr hides the secret)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    principal: str


KeyLookup = Callable[[str], Credential | None]


# Header names as sent, to their lower-case text: clients send the same dozen names on every
# request. Bounded: past it, names are decoded as they come (a pure function, so only speed differs).
_NAMES: dict[bytes, str] = {}
_MAX_NAMES = 512


def header_values(raw: Iterable[tuple[bytes, bytes]]) -> HeaderValues:
    """The `HeaderValues` of ASGI's raw `(name, value)` byte pairs, decoded as latin-1 (the wire's bytes)."""
    values = HeaderValues()
    names = _NAMES
    ascii_only = True
    for raw_name, raw_value in raw:
        name = names.get(raw_name)
        if name is None:
            name = raw_name.decode("latin-1").lower()
            if len(names) < _MAX_NAMES:
                names[bytes(raw_name)] = name
        ascii_only = ascii_only and raw_value.isascii()
        if (known := values.get(name)) is None:
            values[name] = [raw_value.decode("latin-1")]
        else:
            known.append(raw_value.decode("latin-1"))
    if ascii_only:
        values.ascii = True
    return values


def authorization_scheme(headers: Headers, raw_query: str = "") -> AuthScheme | None:
    """How a request claims to be authenticated; None when it does not claim anything.

    An `Authorization` header is "bearer" for the Bearer scheme and "sigv4" for anything else
    (`verify_headers` then says what is wrong with it); without one, a query carrying
    `X-Amz-Algorithm`, `X-Amz-Credential` or `X-Amz-Signature` is "presigned". A request with
    both a header and a presigned query is refused with `IncompleteSignature`, not guessed at.
    """
    if isinstance(headers, HeaderValues):
        authorization = headers.get("authorization", [""])[0].strip()
    else:
        authorization = next(
            (value for name, value in _pairs(headers) if name.lower() == "authorization"), ""
        ).strip()
    # Most queries cannot name a marker (none spells `X-Amz-`, none percent-encodes): skip decoding them.
    presigned = ("X-Amz-" in raw_query or "%" in raw_query) and any(
        name in _PRESIGNED_MARKERS for name, _ in query_pairs(raw_query)
    )
    if authorization and presigned:
        raise IncompleteSignature("Use either an Authorization header or a presigned URL, not both.")
    if authorization:
        return "bearer" if authorization.split(None, 1)[0].lower() == "bearer" else "sigv4"
    return "presigned" if presigned else None


@dataclass(frozen=True)
class PendingSignature:
    """A request's SigV4 claim, checked for everything that needs neither its key's secret nor its body.

    `begin_headers` and `begin_presigned` make one; the server looks the key up (without blocking
    its event loop), refuses an unknown key before reading any body, then calls `verify` with the
    body's SHA-256 once it has streamed through.
    """

    claim: SignatureClaim
    amz_date: str
    canonical_parts: tuple[str, str, str, dict[str, list[str]]] = field(repr=False)
    declared_sha256: str | None = None
    presigned: bool = False

    @property
    def access_key_id(self) -> str:
        return self.claim.access_key_id

    def verify(self, credential: Credential | None, payload_sha256: str) -> Credential:
        """The caller's credential if the signature covers this request with `payload_sha256` as its body."""
        if credential is None:
            raise UnrecognizedClient("The security token included in the request is invalid.")
        method, raw_path, query, received = self.canonical_parts
        if self.presigned:
            hashes = (
                [payload_sha256, UNSIGNED_PAYLOAD] if payload_sha256 == EMPTY_SHA256 else [payload_sha256]
            )
        else:
            hashes = [_payload_hash(self.declared_sha256, payload_sha256)]
        views = [received]
        if (as_utf8 := _utf8_view(received, self.claim.signed_headers)) is not None:
            views.append(as_utf8)
        canonicals = [
            canonical_request(method, raw_path, query, view, self.claim.signed_headers, payload_hash)
            for payload_hash in hashes
            for view in views
        ]
        if not _signature_matches(credential, self.claim, self.amz_date, canonicals):
            raise SignatureMismatch(_MISMATCH)
        return credential


def _utf8_view(received: dict[str, list[str]], signed: Sequence[str]) -> dict[str, list[str]] | None:
    """The headers with signed non-ASCII values read as UTF-8, when they are UTF-8 on the wire.

    Header bytes arrive as latin-1 text. A client that signs the text "séance" and sends it
    latin-1 encoded (http.client, so botocore) matches that; one that sends it UTF-8 encoded
    (curl, httpx given bytes) matches only this view. None when no signed value needs it.
    """
    if isinstance(received, HeaderValues) and received.ascii:
        return None
    view: dict[str, list[str]] | None = None
    for name in signed:
        values = received.get(name, [])
        if all(map(str.isascii, values)):
            continue
        try:
            decoded = [value.encode("latin-1").decode("utf-8") for value in values]
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        view = view if view is not None else dict(received)
        view[name] = decoded
    return view


def begin_headers(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Headers,
    *,
    service: str = SERVICE,
    region: str | None = None,
    now: datetime.datetime | None = None,
    max_skew: datetime.timedelta = MAX_SKEW,
) -> PendingSignature:
    """Check a request signed in its `Authorization` header as far as its headers allow.

    `raw_path` and `raw_query` are exactly as sent (ASGI `raw_path`/`query_string` decoded as
    latin-1); `headers` as received, names in any case. The credential scope must name `service`
    and, when given, `region`; the signing time must be within `max_skew` of now. An
    `x-amz-content-sha256` header is accepted only when it is the hex SHA-256 of the body (checked
    in `verify`): `UNSIGNED-PAYLOAD` and streaming modes are refused, because the body (an agent's
    input) must be covered by the signature.
    """
    received = _header_values(headers)
    authorization = _single(received, "authorization")
    if not authorization:
        raise MissingAuthentication("Missing Authentication Token")
    claim = parse_authorization(authorization)
    amz_date = _single(received, "x-amz-date")
    if amz_date is None:
        raise IncompleteSignature("Authorization requires the X-Amz-Date header.")
    signed_at = parse_amz_date(amz_date)
    _check_claim(claim, amz_date, service, region)
    declared = _single(received, "x-amz-content-sha256")
    if declared is not None and (len(declared) != 64 or declared.strip("0123456789abcdefABCDEF")):
        raise IncompleteSignature("x-amz-content-sha256 must be the hex SHA-256 of the body; sign the body.")
    query = canonical_raw_query(raw_query)
    _check_clock(signed_at, _utc(now), max_skew)
    return PendingSignature(claim, amz_date, (method, raw_path, query, received), declared)


def begin_presigned(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Headers,
    *,
    service: str = SERVICE,
    region: str | None = None,
    now: datetime.datetime | None = None,
    max_expires: int = MAX_PRESIGNED_EXPIRY,
    max_skew: datetime.timedelta = MAX_SKEW,
) -> PendingSignature:
    """Check a URL presigned with SigV4 query parameters as far as it can be without the key.

    botocore's `SigV4QueryAuth` signs every query parameter but `X-Amz-Signature` and, for
    this service, the SHA-256 of the (empty) body; `UNSIGNED-PAYLOAD`, which S3-style
    presigners use, is also accepted when the body is empty. `X-Amz-Expires` must be
    1..`max_expires` seconds (else `IncompleteSignature`); past `X-Amz-Date` + `X-Amz-Expires`,
    or with `X-Amz-Date` over `max_skew` in the future, the URL is `RequestExpired`.
    """
    pairs = query_pairs(raw_query)
    presigned = parse_presigned_query(pairs)
    if not 1 <= presigned.expires <= max_expires:
        raise IncompleteSignature(f"X-Amz-Expires must be between 1 and {max_expires} seconds.")
    claim = presigned.claim
    _check_claim(claim, presigned.amz_date, service, region)
    query = canonical_query([(name, value) for name, value in pairs if name != b"X-Amz-Signature"])
    _check_lifetime(presigned.signed_at, presigned.expires, _utc(now), max_skew)
    parts = (method, raw_path, query, _header_values(headers))
    return PendingSignature(claim, presigned.amz_date, parts, presigned=True)


def verify_headers(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Headers,
    payload_sha256: str,
    lookup: KeyLookup,
    *,
    service: str = SERVICE,
    region: str | None = None,
    now: datetime.datetime | None = None,
    max_skew: datetime.timedelta = MAX_SKEW,
) -> Credential:
    """Check a request signed in its `Authorization` header; returns the caller's credential.

    `begin_headers` and `PendingSignature.verify` in one step, for a body already read whole;
    `payload_sha256` is the hex SHA-256 of the body as received.
    """
    pending = begin_headers(
        method, raw_path, raw_query, headers, service=service, region=region, now=now, max_skew=max_skew
    )
    return pending.verify(lookup(pending.access_key_id), payload_sha256)


def verify_presigned(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Headers,
    lookup: KeyLookup,
    *,
    payload_sha256: str = EMPTY_SHA256,
    service: str = SERVICE,
    region: str | None = None,
    now: datetime.datetime | None = None,
    max_expires: int = MAX_PRESIGNED_EXPIRY,
    max_skew: datetime.timedelta = MAX_SKEW,
) -> Credential:
    """Check a URL presigned with SigV4 query parameters; returns the caller's credential.

    `begin_presigned` and `PendingSignature.verify` in one step; pass `payload_sha256` for a
    request that has a body.
    """
    pending = begin_presigned(
        method, raw_path, raw_query, headers, service=service, region=region, now=now,
        max_expires=max_expires, max_skew=max_skew,
    )  # fmt: skip
    return pending.verify(lookup(pending.access_key_id), payload_sha256)


def _pairs(headers: Headers) -> Iterable[tuple[str, str]]:
    """(name, value) pairs of headers given as pairs or as a mapping of one value per name."""
    if isinstance(headers, HeaderValues):
        return ((name, value) for name, values in headers.items() for value in values)
    if isinstance(headers, Mapping):
        return cast("Mapping[str, str]", headers).items()
    return headers


def _header_values(headers: Headers) -> dict[str, list[str]]:
    if isinstance(headers, HeaderValues):
        return headers
    values: dict[str, list[str]] = {}
    for name, value in _pairs(headers):
        key = name.lower()
        if (known := values.get(key)) is None:
            values[key] = [value]
        else:
            known.append(value)
    return values


def _single(received: dict[str, list[str]], name: str) -> str | None:
    values = received.get(name)
    if values is None:
        return None
    if len(values) > 1:
        raise IncompleteSignature(f"The {name} header must appear only once.")
    return values[0]


def _check_claim(claim: SignatureClaim, amz_date: str, service: str, region: str | None) -> None:
    if claim.service != service:
        raise IncompleteSignature(f"Credential should be scoped to correct service: '{service}'.")
    if region is not None and claim.region != region:
        raise WrongRegion(f"Credential should be scoped to a valid region: this server is '{region}'.")
    if claim.date != amz_date[:8]:
        raise IncompleteSignature("Date in Credential scope does not match YYYYMMDD from X-Amz-Date.")
    if "host" not in claim.signed_headers:
        raise IncompleteSignature("SignedHeaders must include host.")


def _payload_hash(declared: str | None, computed: str) -> str:
    if declared is None:
        return computed
    if declared.lower() == computed:
        return declared  # the client signed the header's text, whatever its case
    raise SignatureMismatch("The x-amz-content-sha256 header does not match the SHA-256 of the request body.")


def _utc(now: datetime.datetime | None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(datetime.timezone.utc)
    return now if now.tzinfo is not None else now.replace(tzinfo=datetime.timezone.utc)


def _check_clock(signed_at: datetime.datetime, now: datetime.datetime, max_skew: datetime.timedelta) -> None:
    skew = now - signed_at
    if -max_skew <= skew <= max_skew:
        return  # every signed call: nothing to format
    minutes = f"{max_skew.total_seconds() / 60:g} min."
    if now - signed_at > max_skew:
        raise RequestExpired(
            f"Signature expired: {_amz(signed_at)} is now earlier than {_amz(now - max_skew)} "
            f"({_amz(now)} - {minutes})"
        )
    if signed_at - now > max_skew:
        raise RequestExpired(
            f"Signature not yet current: {_amz(signed_at)} is still later than {_amz(now + max_skew)} "
            f"({_amz(now)} + {minutes})"
        )


def _check_lifetime(
    signed_at: datetime.datetime, expires: int, now: datetime.datetime, max_skew: datetime.timedelta
) -> None:
    # Differences, not sums: a date near year 9999 must not overflow.
    lifetime = datetime.timedelta(seconds=expires)
    if now - signed_at > lifetime:
        raise RequestExpired(f"Signature expired: the presigned URL expired at {_amz(signed_at + lifetime)}.")
    if signed_at - now > max_skew:
        raise RequestExpired(f"Signature not yet current: {_amz(signed_at)} is in the future.")


def _amz(moment: datetime.datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _signature_matches(
    credential: Credential, claim: SignatureClaim, amz_date: str, canonicals: Sequence[str]
) -> bool:
    key = signing_key(credential.secret_access_key, claim.date, claim.region, claim.service)
    matches = False
    for canonical in canonicals:
        expected = signature(key, amz_date, claim.scope, canonical)
        matches |= hmac.compare_digest(expected, claim.signature)
    return matches


def signature(key: bytes, amz_date: str, scope: str, canonical: str) -> str:
    """The hex SigV4 signature of a canonical request, with a key from `signing_key`."""
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"
    return hmac.digest(key, to_sign.encode(), "sha256").hex()  # one-shot: OpenSSL's fast path


@functools.lru_cache(maxsize=64)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    # Derived keys change daily per region and service; four HMACs per request are worth saving.
    key = ("AWS4" + secret).encode("utf-8", "surrogatepass")
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


__all__ = [
    "EMPTY_SHA256",
    "MAX_PRESIGNED_EXPIRY",
    "MAX_SKEW",
    "SERVICE",
    "UNSIGNED_PAYLOAD",
    "AuthScheme",
    "Credential",
    "HeaderValues",
    "Headers",
    "KeyLookup",
    "PendingSignature",
    "authorization_scheme",
    "begin_headers",
    "begin_presigned",
    "header_values",
    "signature",
    "signing_key",
    "verify_headers",
    "verify_presigned",
]
