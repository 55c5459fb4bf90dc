"""The JWT bearer-token authorizer: a runtime's `customJWTAuthorizer`, checked against its OpenID issuer.

The issuer's discovery document and JWKS are fetched over HTTP and cached per discovery URL. No
error message, log line or repr here ever contains a token or anything decoded from one.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import ipaddress
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import Algorithm, ECAlgorithm, RSAAlgorithm, RSAPSSAlgorithm
from jwt.exceptions import PyJWTError

CACHE_TTL = 600.0
REFETCH_INTERVAL = 60.0
RETRY_INTERVAL = 5.0
LEEWAY = 60.0
FETCH_TIMEOUT = 5.0
MAX_TOKEN_LENGTH = 16 * 1024
MAX_DOCUMENT_BYTES = 1024 * 1024

_FIELD = "authorizerConfiguration.customJWTAuthorizer"
# botocore's DiscoveryUrl pattern: OpenID discovery or OAuth (RFC 8414) metadata, no query.
_DISCOVERY_URL = re.compile(
    r"[^\s?#]+/\.well-known/(openid-configuration|oauth-authorization-server)(/[^\s?#]+)?"
)
_SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]{1,255}")
_CLAIM_NAME = re.compile(r"[A-Za-z0-9_.-:]{1,255}")  # botocore's pattern, range and all
_MATCH_VALUE = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_NON_EMPTY = re.compile(r".+", re.DOTALL)
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_RSA = "rsa"
_P256 = "secp256r1"
_P384 = "secp384r1"
# The header's alg picks the verifier and the only key shape it may be used with.
_ALGORITHMS: dict[str, tuple[Algorithm, str]] = {
    "RS256": (RSAAlgorithm(RSAAlgorithm.SHA256), _RSA),
    "RS384": (RSAAlgorithm(RSAAlgorithm.SHA384), _RSA),
    "RS512": (RSAAlgorithm(RSAAlgorithm.SHA512), _RSA),
    "PS256": (RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256), _RSA),
    "ES256": (ECAlgorithm(ECAlgorithm.SHA256), _P256),
    "ES384": (ECAlgorithm(ECAlgorithm.SHA384), _P384),
}
ALGORITHMS = tuple(_ALGORITHMS)
_Enum = TypeVar("_Enum", bound=enum.Enum)


class AuthorizerError(Exception):
    """A request the JWT authorizer refuses; `wire_name` and `status` are its AWS wire error."""

    wire_name: ClassVar[str] = "AccessDeniedException"
    status: ClassVar[int] = 403


class MissingBearerToken(AuthorizerError):
    """The request carries no bearer token for a runtime that requires one."""

    wire_name = "UnauthorizedException"
    status = 401


class TokenCheck(enum.Enum):
    """The check a refused token failed."""

    MALFORMED = "malformed"
    ALGORITHM = "algorithm"
    UNKNOWN_KEY = "unknown key"
    SIGNATURE = "signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"
    ISSUER = "issuer"
    AUDIENCE = "audience"
    CLIENT = "client"
    SCOPE = "scope"
    CLAIM = "claim"


class TokenRejected(AuthorizerError):
    """The token failed `check` (for `TokenCheck.CLAIM`, the rule on the claim named `claim`).

    The message names the check and explains it in fixed words, never quoting the token.
    """

    wire_name = "AccessDeniedException"
    status = 403

    def __init__(self, check: TokenCheck, detail: str, claim: str | None = None) -> None:
        label = f"claim {claim}" if claim is not None else check.value
        super().__init__(f"Bearer token rejected ({label}): {detail}")
        self.check = check
        self.claim = claim


class IssuerUnreachable(AuthorizerError):
    """The issuer's discovery document or JWKS could not be fetched, or is not usable.

    During verification this is the server's failure, not the caller's; while a runtime is being
    created, the control plane may rather report it as a validation error.
    """

    wire_name = "InternalServerException"
    status = 500


class InvalidAuthorizerConfig(AuthorizerError):
    """A `customJWTAuthorizer` configuration is malformed; `field` names the offending field."""

    wire_name = "ValidationException"
    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ClaimValueType(enum.Enum):
    """`inboundTokenClaimValueType`: what the token's claim holds."""

    STRING = "STRING"
    STRING_ARRAY = "STRING_ARRAY"


class ClaimMatchOperator(enum.Enum):
    """`claimMatchOperator`: EQUALS (STRING), CONTAINS one value or CONTAINS_ANY of a list (STRING_ARRAY)."""

    EQUALS = "EQUALS"
    CONTAINS = "CONTAINS"
    CONTAINS_ANY = "CONTAINS_ANY"


_OPERAND = {
    ClaimMatchOperator.EQUALS: (ClaimValueType.STRING, "matchValueString"),
    ClaimMatchOperator.CONTAINS: (ClaimValueType.STRING_ARRAY, "matchValueString"),
    ClaimMatchOperator.CONTAINS_ANY: (ClaimValueType.STRING_ARRAY, "matchValueStringList"),
}


@dataclass(frozen=True)
class ClaimRule:
    """One `customClaims` entry; `values` holds one string except for CONTAINS_ANY."""

    name: str
    value_type: ClaimValueType
    operator: ClaimMatchOperator
    values: tuple[str, ...]

    def matches(self, claims: Mapping[str, Any]) -> bool:
        """Whether the token's claim satisfies the rule; a missing or mistyped claim never does."""
        value = claims.get(self.name)
        if self.value_type is ClaimValueType.STRING:
            return isinstance(value, str) and value == self.values[0]
        return isinstance(value, list) and any(item in self.values for item in value if isinstance(item, str))


@dataclass(frozen=True)
class JwtAuthorizerConfig:
    """A validated `customJWTAuthorizer`; None means the check is not configured."""

    discovery_url: str
    allowed_audience: frozenset[str] | None = None
    allowed_clients: frozenset[str] | None = None
    allowed_scopes: frozenset[str] | None = None
    custom_claims: tuple[ClaimRule, ...] = ()

    @classmethod
    def from_wire(cls, config: Mapping[str, Any]) -> JwtAuthorizerConfig:
        """Parse botocore's CustomJWTAuthorizerConfiguration shape, or raise `InvalidAuthorizerConfig`.

        The discovery URL must be https, or http to a loopback host. Fields this server does not
        honour (`advertisedScopeMapping`, `privateEndpoint`, ...) are ignored.
        """
        if not isinstance(config, Mapping):
            raise InvalidAuthorizerConfig(_FIELD, "customJWTAuthorizer must be an object")
        url = config.get("discoveryUrl")
        where = f"{_FIELD}.discoveryUrl"
        if not isinstance(url, str) or not _DISCOVERY_URL.fullmatch(url):
            raise InvalidAuthorizerConfig(
                where,
                "discoveryUrl must end in /.well-known/openid-configuration (or RFC 8414 metadata)",
            )
        _check_url(url, where)
        claims = config.get("customClaims")
        if claims is not None and (not isinstance(claims, list) or not claims):
            raise InvalidAuthorizerConfig(f"{_FIELD}.customClaims", "customClaims must be a non-empty list")
        return cls(
            url,
            _strings(config, "allowedAudience"),
            _strings(config, "allowedClients"),
            _strings(config, "allowedScopes", _SCOPE),
            tuple(_claim_rule(rule, f"{_FIELD}.customClaims[{i}]") for i, rule in enumerate(claims or [])),
        )


def validate_authorizer_config(config: Mapping[str, Any]) -> None:
    """Raise `InvalidAuthorizerConfig`, naming the field, unless `config` is a valid `customJWTAuthorizer`."""
    JwtAuthorizerConfig.from_wire(config)


def bearer_token(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer <token>` header value; `MissingBearerToken` without one."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingBearerToken("This runtime requires an 'Authorization: Bearer <token>' header.")
    return token.strip()


class Claims(Mapping[str, Any]):
    """The claims of a verified token, read-only; its repr shows claim names only."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Claims({sorted(self._values)})"

    @property
    def user_id(self) -> str | None:
        """The subject (`sub`), which identifies the user; None when the token has none."""
        subject = self._values.get("sub")
        return subject if isinstance(subject, str) else None

    @property
    def scopes(self) -> frozenset[str]:
        """The token's scopes, from `scope` and `scp`, each a space-separated string or a list."""
        return _scopes(self._values)


@dataclass(frozen=True)
class IssuerMetadata:
    """What an issuer publishes: its identifier, its JWKS address and the ids of its signing keys."""

    issuer: str
    jwks_uri: str
    key_ids: tuple[str | None, ...]


class JwtAuthorizer:
    """Verifies bearer tokens for any number of runtimes, caching each issuer's keys.

    One instance serves the whole server from one event loop; `aclose()` it at shutdown. The
    discovery document and JWKS are kept for `cache_ttl` seconds. A token whose `kid` is not in
    the cached JWKS makes one refetch, at most once per `refetch_interval` per issuer, so a flood
    of bogus key ids reaches the issuer rarely; a failed fetch is not retried for `retry_interval`.
    `clock` (Unix seconds) drives token times and the cache, so tests can move it.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
        cache_ttl: float = CACHE_TTL,
        refetch_interval: float = REFETCH_INTERVAL,
        retry_interval: float = RETRY_INTERVAL,
        leeway: float = LEEWAY,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self._client = client
        self._owns_client = client is None
        self._clock = clock
        self._cache_ttl = cache_ttl
        self._refetch_interval = refetch_interval
        self._retry_interval = retry_interval
        self._leeway = leeway
        self._timeout = timeout
        self._issuers: dict[str, _Issuer] = {}
        self._refetched_at: dict[str, float] = {}
        self._failures: dict[str, tuple[float, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def __aenter__(self) -> JwtAuthorizer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client, unless the caller passed its own."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def verify(self, token: str, config: JwtAuthorizerConfig | Mapping[str, Any]) -> Claims:
        """The claims of `token` once it passes every check `config` asks for.

        Raises `MissingBearerToken` for an empty token, `TokenRejected` naming the failed check,
        `IssuerUnreachable` when the issuer cannot be fetched, `InvalidAuthorizerConfig` for a
        malformed wire `config` (pass a `JwtAuthorizerConfig` to parse it once).
        """
        if not token:
            raise MissingBearerToken("This runtime requires a bearer token.")
        rules = config if isinstance(config, JwtAuthorizerConfig) else JwtAuthorizerConfig.from_wire(config)
        parsed = _parse(token)
        issuer = await self._issuer(rules.discovery_url)
        if parsed.kid is not None and not issuer.has_kid(parsed.kid):
            issuer = await self._refetch_keys(rules.discovery_url, parsed.kid)
        _check_signature(parsed, issuer.keys)
        _check_claims(parsed.payload, issuer.issuer, rules, self._clock(), self._leeway)
        return Claims(parsed.payload)

    async def check_issuer(self, discovery_url: str) -> IssuerMetadata:
        """Fetch (or take from the cache) an issuer's metadata; `IssuerUnreachable` if it is not usable."""
        issuer = await self._issuer(discovery_url)
        return IssuerMetadata(issuer.issuer, issuer.jwks_uri, tuple(key.kid for key in issuer.keys))

    async def _issuer(self, url: str) -> _Issuer:
        cached = self._issuers.get(url)
        if cached is not None and self._fresh(cached.fetched_at, self._cache_ttl):
            return cached
        async with self._locks.setdefault(url, asyncio.Lock()):
            cached = self._issuers.get(url)
            if cached is not None and self._fresh(cached.fetched_at, self._cache_ttl):
                return cached
            failed = self._failures.get(url)
            if failed is not None and self._fresh(failed[0], self._retry_interval):
                raise IssuerUnreachable(failed[1])
            try:
                document = await self._fetch(url, "discovery document")
                issuer, jwks_uri = _discovery(url, document)
                keys = _signing_keys(await self._fetch(jwks_uri, "JWKS"), jwks_uri)
            except IssuerUnreachable as error:
                self._failures[url] = (self._clock(), str(error))
                raise
            self._failures.pop(url, None)
            fetched = self._issuers[url] = _Issuer(issuer, jwks_uri, keys, self._clock())
            return fetched

    async def _refetch_keys(self, url: str, kid: str) -> _Issuer:
        async with self._locks.setdefault(url, asyncio.Lock()):
            cached = self._issuers[url]
            last = self._refetched_at.get(url)
            if cached.has_kid(kid) or (last is not None and self._fresh(last, self._refetch_interval)):
                return cached
            self._refetched_at[url] = self._clock()
            keys = _signing_keys(await self._fetch(cached.jwks_uri, "JWKS"), cached.jwks_uri)
            refreshed = self._issuers[url] = replace(cached, keys=keys)
            return refreshed

    def _fresh(self, since: float, ttl: float) -> bool:
        age = self._clock() - since
        return 0 <= age < ttl  # a clock that went backwards makes everything stale

    async def _fetch(self, url: str, what: str) -> Any:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        unreachable = f"The JWT issuer could not be reached: GET {url} ({what})"
        try:
            async with self._client.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise IssuerUnreachable(f"{unreachable} answered HTTP {response.status_code}.")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise IssuerUnreachable(f"{unreachable} sent over {MAX_DOCUMENT_BYTES} bytes.")
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            reason = str(error) or type(error).__name__
            raise IssuerUnreachable(f"{unreachable} failed: {reason}.") from error
        try:
            return json.loads(bytes(body))
        except (ValueError, RecursionError):
            raise IssuerUnreachable(f"The JWT issuer's {what} at {url} is not valid JSON.") from None


async def check_issuer(discovery_url: str, client: httpx.AsyncClient | None = None) -> IssuerMetadata:
    """Fetch an issuer's discovery document and JWKS once; `IssuerUnreachable` says what is wrong."""
    async with JwtAuthorizer(client) as authorizer:
        return await authorizer.check_issuer(discovery_url)


@dataclass(frozen=True)
class _SigningKey:
    kid: str | None
    alg: str | None
    shape: str
    key: RSAPublicKey | EllipticCurvePublicKey


@dataclass(frozen=True)
class _Issuer:
    issuer: str
    jwks_uri: str
    keys: tuple[_SigningKey, ...]
    fetched_at: float

    def has_kid(self, kid: str) -> bool:
        return any(key.kid == kid for key in self.keys)


@dataclass(frozen=True)
class _Token:
    alg: str
    kid: str | None
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _check_url(url: str, field: str) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise InvalidAuthorizerConfig(field, f"{field} is not a valid URL") from None
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host and _loopback(host):
        return
    raise InvalidAuthorizerConfig(field, f"{field} must be an https URL (http only to a loopback host)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _strings(
    config: Mapping[str, Any], name: str, pattern: re.Pattern[str] | None = None
) -> frozenset[str] | None:
    value = config.get(name)
    if value is None:
        return None
    valid = (pattern or _NON_EMPTY).fullmatch
    if not (isinstance(value, list) and value and all(isinstance(v, str) and valid(v) for v in value)):
        raise InvalidAuthorizerConfig(f"{_FIELD}.{name}", f"{name} must be a non-empty list of valid strings")
    return frozenset(value)


def _claim_rule(rule: Any, where: str) -> ClaimRule:
    if not isinstance(rule, Mapping):
        raise InvalidAuthorizerConfig(where, f"{where} must be an object")
    name = rule.get("inboundTokenClaimName")
    if not isinstance(name, str) or not _CLAIM_NAME.fullmatch(name):
        raise InvalidAuthorizerConfig(f"{where}.inboundTokenClaimName", "inboundTokenClaimName is not valid")
    value_type = _enum(ClaimValueType, rule, "inboundTokenClaimValueType", where)
    match = rule.get("authorizingClaimMatchValue")
    where = f"{where}.authorizingClaimMatchValue"
    if not isinstance(match, Mapping) or not isinstance(match.get("claimMatchValue"), Mapping):
        raise InvalidAuthorizerConfig(where, f"{where} must have claimMatchValue and claimMatchOperator")
    operator = _enum(ClaimMatchOperator, match, "claimMatchOperator", where)
    value = match["claimMatchValue"]
    expected_type, member = _OPERAND[operator]
    if value_type is not expected_type:
        raise InvalidAuthorizerConfig(
            f"{where}.claimMatchOperator", f"{operator.value} applies to {expected_type.value} claims only"
        )
    where = f"{where}.claimMatchValue"
    if set(value) != {member}:
        raise InvalidAuthorizerConfig(where, f"{operator.value} takes exactly one member, {member}")
    operand = value[member]
    values = tuple(operand) if isinstance(operand, list) else (operand,)
    if (
        isinstance(operand, list) != (operator is ClaimMatchOperator.CONTAINS_ANY)
        or not values
        or not all(isinstance(item, str) and _MATCH_VALUE.fullmatch(item) for item in values)
    ):
        kind = "a non-empty list of strings" if operator is ClaimMatchOperator.CONTAINS_ANY else "a string"
        raise InvalidAuthorizerConfig(f"{where}.{member}", f"{member} must be {kind} of A-Z a-z 0-9 _ . -")
    return ClaimRule(name, value_type, operator, values)


def _enum(kind: type[_Enum], record: Mapping[str, Any], member: str, where: str) -> _Enum:
    field = f"{where}.{member}"
    try:
        return kind(record.get(member))
    except ValueError:
        names = ", ".join(choice.value for choice in kind)
        raise InvalidAuthorizerConfig(field, f"{field} must be one of {names}") from None


def _discovery(url: str, document: Any) -> tuple[str, str]:
    if not isinstance(document, dict):
        raise IssuerUnreachable(f"The JWT issuer's discovery document at {url} is not a JSON object.")
    issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
    if not isinstance(issuer, str) or not issuer:
        raise IssuerUnreachable(f"The JWT issuer's discovery document at {url} has no issuer.")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise IssuerUnreachable(f"The JWT issuer's discovery document at {url} has no jwks_uri.")
    try:
        _check_url(jwks_uri, "jwks_uri")
    except InvalidAuthorizerConfig as error:
        raise IssuerUnreachable(f"The JWT issuer's discovery document at {url}: {error}.") from None
    return issuer, jwks_uri


def _signing_keys(document: Any, url: str) -> tuple[_SigningKey, ...]:
    """The usable signature keys of a JWKS; keys of other types or uses are skipped, not errors."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise IssuerUnreachable(f"The JWT issuer's JWKS at {url} has no keys list.")
    usable = []
    for jwk in keys:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        kid, alg = jwk.get("kid"), jwk.get("alg")
        if not isinstance(kid, (str, type(None))) or not isinstance(alg, (str, type(None))):
            continue
        key = _public_key(jwk)
        if isinstance(key, RSAPublicKey):
            usable.append(_SigningKey(kid, alg, _RSA, key))
        elif isinstance(key, EllipticCurvePublicKey) and key.curve.name in (_P256, _P384):
            usable.append(_SigningKey(kid, alg, key.curve.name, key))
    return tuple(usable)


def _public_key(jwk: dict[str, Any]) -> object:
    # Only the public members: a JWKS that leaks private ones must not make us build private keys.
    try:
        if jwk.get("kty") == "RSA":
            return RSAAlgorithm.from_jwk({name: jwk.get(name) for name in ("kty", "n", "e")})
        if jwk.get("kty") == "EC":
            return ECAlgorithm.from_jwk({name: jwk.get(name) for name in ("kty", "crv", "x", "y")})
    except (PyJWTError, ValueError, TypeError):
        pass
    return None


def _parse(token: str) -> _Token:
    segments = token.split(".") if len(token) <= MAX_TOKEN_LENGTH else []
    if len(segments) != 3 or not all(map(_SEGMENT.fullmatch, segments)):
        raise TokenRejected(TokenCheck.MALFORMED, "the token is not a signed JWT (header.payload.signature).")
    header = _json_object(segments[0], "header")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in _ALGORITHMS:
        raise TokenRejected(TokenCheck.ALGORITHM, f"the token must be signed with {', '.join(ALGORITHMS)}.")
    if not isinstance(kid, (str, type(None))) or "crit" in header:
        raise TokenRejected(TokenCheck.MALFORMED, "the token header has an invalid kid or a crit member.")
    payload = _json_object(segments[1], "payload")
    signature = _base64url(segments[2], "signature")
    return _Token(alg, kid, payload, f"{segments[0]}.{segments[1]}".encode("ascii"), signature)


def _base64url(segment: str, part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except ValueError:
        raise TokenRejected(TokenCheck.MALFORMED, f"the token {part} is not base64url.") from None


def _json_object(segment: str, part: str) -> dict[str, Any]:
    try:
        value = json.loads(
            _base64url(segment, part).decode("utf-8"),
            object_pairs_hook=_unique_members,
            parse_constant=_no_constant,
        )
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise TokenRejected(TokenCheck.MALFORMED, f"the token {part} is not a JSON object.")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate names are read differently by different parsers; refuse rather than pick one.
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member")
    return members


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_signature(token: _Token, keys: tuple[_SigningKey, ...]) -> None:
    verifier, shape = _ALGORITHMS[token.alg]
    named = [key for key in keys if key.kid == token.kid] if token.kid is not None else list(keys)
    if not named:
        raise TokenRejected(TokenCheck.UNKNOWN_KEY, "the issuer publishes no key with the token's key id.")
    fitting = [key for key in named if key.shape == shape and key.alg in (None, token.alg)]
    if not fitting:
        raise TokenRejected(TokenCheck.ALGORITHM, "the token's algorithm does not fit the issuer's key.")
    if not any(verifier.verify(token.signing_input, key.key, token.signature) for key in fitting):
        raise TokenRejected(TokenCheck.SIGNATURE, "the token's signature does not verify.")


def _check_claims(
    claims: dict[str, Any], issuer: str, rules: JwtAuthorizerConfig, now: float, leeway: float
) -> None:
    expires, not_before, issued = (_time(claims, name) for name in ("exp", "nbf", "iat"))
    if expires is None:
        raise TokenRejected(TokenCheck.MALFORMED, "the token has no expiry time (exp).")
    if expires <= now - leeway:
        raise TokenRejected(TokenCheck.EXPIRED, "the token has expired.")
    if not_before is not None and not_before > now + leeway:
        raise TokenRejected(TokenCheck.NOT_YET_VALID, "the token is not valid yet (nbf).")
    if issued is not None and issued > now + leeway:
        raise TokenRejected(TokenCheck.NOT_YET_VALID, "the token was issued in the future (iat).")
    if claims.get("iss") != issuer:
        raise TokenRejected(TokenCheck.ISSUER, "the token's issuer is not the configured issuer.")
    audience = _strings_of(claims.get("aud"))
    if rules.allowed_audience is not None and rules.allowed_audience.isdisjoint(audience):
        raise TokenRejected(TokenCheck.AUDIENCE, "the token's audience is not allowed.")
    client_id = claims.get("client_id")
    clients = ([client_id] if isinstance(client_id, str) else []) if "client_id" in claims else audience
    if rules.allowed_clients is not None and rules.allowed_clients.isdisjoint(clients):
        raise TokenRejected(TokenCheck.CLIENT, "the token's client is not allowed.")
    if rules.allowed_scopes is not None and rules.allowed_scopes.isdisjoint(_scopes(claims)):
        raise TokenRejected(TokenCheck.SCOPE, "the token has none of the allowed scopes.")
    for rule in rules.custom_claims:
        if not rule.matches(claims):
            detail = f"the token does not satisfy the {rule.operator.value} rule."
            raise TokenRejected(TokenCheck.CLAIM, detail, rule.name)


def _time(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TokenRejected(TokenCheck.MALFORMED, f"the token's {name} is not a number of seconds.")
    return float(value)


def _strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        scopes.update(value.split() if isinstance(value, str) else _strings_of(value))
    return frozenset(scopes)


__all__ = [
    "ALGORITHMS",
    "CACHE_TTL",
    "LEEWAY",
    "REFETCH_INTERVAL",
    "AuthorizerError",
    "ClaimMatchOperator",
    "ClaimRule",
    "ClaimValueType",
    "Claims",
    "InvalidAuthorizerConfig",
    "IssuerMetadata",
    "IssuerUnreachable",
    "JwtAuthorizer",
    "JwtAuthorizerConfig",
    "MissingBearerToken",
    "TokenCheck",
    "TokenRejected",
    "bearer_token",
    "check_issuer",
    "validate_authorizer_config",
]
