"""The JWT bearer-token authorizer: `auth/jwt_authorizer.py`, against a real OpenID issuer.

Every token here is signed by PyJWT with keys generated for the run and checked against the
issuer in `oidc_issuer.py` over real HTTP; time is a fake clock the authorizer is given.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import event, given, settings
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm

from open_agentcore.auth import (
    Claims,
    InvalidAuthorizerConfig,
    IssuerUnreachable,
    JwtAuthorizer,
    JwtAuthorizerConfig,
    MissingBearerToken,
    TokenCheck,
    TokenRejected,
    bearer_token,
    check_issuer,
    validate_authorizer_config,
)
from open_agentcore.auth.jwt_authorizer import CACHE_TTL, LEEWAY, REFETCH_INTERVAL, RETRY_INTERVAL

from .oidc_issuer import DISCOVERY_PATH, JWKS_PATH, OidcIssuer, Response, ec_key, public_jwk, rsa_key

pytestmark = pytest.mark.anyio
FIELD = "authorizerConfiguration.customJWTAuthorizer"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    """Unix time that moves only when a test says so."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def start_issuer() -> OidcIssuer:
    issuer = OidcIssuer()
    issuer.add_key("rsa-1", rsa_key(0))
    issuer.add_key("ec-256", ec_key("P-256"))
    issuer.add_key("ec-384", ec_key("P-384"))
    return issuer


@pytest.fixture
def issuer() -> Iterator[OidcIssuer]:
    with start_issuer() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def tls() -> ssl.SSLContext:
    """One TLS context for the module: building one per HTTP client costs tens of milliseconds."""
    return ssl.create_default_context()


@pytest.fixture
async def authorizer(clock: Clock, tls: ssl.SSLContext) -> AsyncIterator[JwtAuthorizer]:
    async with httpx.AsyncClient(verify=tls) as client, JwtAuthorizer(client, clock=clock) as running:
        yield running


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port bound but never listening, so connections to it are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def config(issuer: OidcIssuer, **fields: Any) -> dict[str, Any]:
    return {"discoveryUrl": issuer.discovery_url, **fields}


def token(issuer: OidcIssuer, clock: Clock, kid: str = "rsa-1", alg: str = "RS256", /, **claims: Any) -> str:
    return issuer.sign(issuer.claims(now=clock.now, **claims), kid, alg)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assemble(header: Any, payload: Any, signature: bytes = b"") -> str:
    """A token built by hand, for what PyJWT will not produce."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"


def rs256(payload: Any, header: Any = None) -> str:
    """A token signed by hand with the issuer's `rsa-1` key, for claims PyJWT refuses to encode."""
    unsigned = assemble(header or {"alg": "RS256", "kid": "rsa-1"}, payload).rsplit(".", 1)[0]
    return f"{unsigned}.{b64(RSAAlgorithm(RSAAlgorithm.SHA256).sign(unsigned.encode(), rsa_key(0)))}"


def hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    unsigned = assemble(header, payload).rsplit(".", 1)[0]
    return f"{unsigned}.{b64(hmac.new(secret, unsigned.encode(), hashlib.sha256).digest())}"


def assert_token_absent(error: BaseException, token: str) -> None:
    """No 12-character piece of the token appears in the error's message, repr or arguments."""
    text = f"{error} {error!r} {error.args!r}"
    assert token not in text
    assert not [token[i : i + 12] for i in range(len(token) - 11) if token[i : i + 12] in text]


async def rejected(authorizer: JwtAuthorizer, token: str, rules: Any) -> TokenRejected:
    with pytest.raises(TokenRejected) as caught:
        await authorizer.verify(token, rules)
    assert caught.value.wire_name == "AccessDeniedException" and caught.value.status == 403
    assert_token_absent(caught.value, token)
    return caught.value


# Configuration ---------------------------------------------------------------------------------


def test_a_full_configuration_parses_into_its_rules() -> None:
    parsed = JwtAuthorizerConfig.from_wire(
        {
            "discoveryUrl": "https://idp.example.com/pool/.well-known/openid-configuration",
            "allowedAudience": ["api"],
            "allowedClients": ["c-1", "c-2"],
            "allowedScopes": ["agent/invoke"],
            "customClaims": [
                {
                    "inboundTokenClaimName": "cognito:groups",
                    "inboundTokenClaimValueType": "STRING_ARRAY",
                    "authorizingClaimMatchValue": {
                        "claimMatchValue": {"matchValueStringList": ["admin", "ops"]},
                        "claimMatchOperator": "CONTAINS_ANY",
                    },
                }
            ],
            "advertisedScopeMapping": {"agent/invoke": "invoke"},  # accepted, not honoured
        }
    )
    assert parsed.allowed_audience == frozenset({"api"})
    assert parsed.allowed_clients == frozenset({"c-1", "c-2"})
    assert parsed.allowed_scopes == frozenset({"agent/invoke"})
    assert [(rule.name, rule.operator.value, rule.values) for rule in parsed.custom_claims] == [
        ("cognito:groups", "CONTAINS_ANY", ("admin", "ops"))
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://idp.example.com/.well-known/openid-configuration",
        "https://login.example.com/tenant/v2.0/.well-known/openid-configuration",
        "https://idp.example.com/.well-known/oauth-authorization-server/tenant",
        "http://127.0.0.1:8900/.well-known/openid-configuration",
        "http://127.8.0.1/.well-known/openid-configuration",
        "http://localhost:9/.well-known/openid-configuration",
        "http://[::1]:9/.well-known/openid-configuration",
    ],
)
def test_https_and_loopback_http_discovery_urls_are_valid(url: str) -> None:
    validate_authorizer_config({"discoveryUrl": url})


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.example.com/.well-known/openid-configuration",
        "http://10.0.0.1/.well-known/openid-configuration",
        "http://localhost.example.com/.well-known/openid-configuration",
        "ftp://idp.example.com/.well-known/openid-configuration",
        "https:///.well-known/openid-configuration",
        "https://idp.example.com/.well-known/jwks.json",
        "https://idp.example.com/.well-known/openid-configuration?tenant=1",
        "https://idp.example.com/.well-known/openid-configuration#x",
        "https://[::1/.well-known/openid-configuration",
        "idp.example.com/.well-known/openid-configuration",
        "",
        None,
        42,
    ],
)
def test_other_discovery_urls_are_refused_naming_the_field(url: Any) -> None:
    with pytest.raises(InvalidAuthorizerConfig) as caught:
        validate_authorizer_config({"discoveryUrl": url})
    assert caught.value.field == f"{FIELD}.discoveryUrl"
    assert "discoveryUrl" in str(caught.value)
    assert (caught.value.wire_name, caught.value.status) == ("ValidationException", 400)


def claim_rule(value_type: str, operator: str, value: Any) -> dict[str, Any]:
    return {
        "inboundTokenClaimName": "department",
        "inboundTokenClaimValueType": value_type,
        "authorizingClaimMatchValue": {"claimMatchValue": value, "claimMatchOperator": operator},
    }


RULE = f"{FIELD}.customClaims[0]"
MATCH = f"{RULE}.authorizingClaimMatchValue"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"allowedAudience": []}, f"{FIELD}.allowedAudience"),
        ({"allowedAudience": "api"}, f"{FIELD}.allowedAudience"),
        ({"allowedClients": [""]}, f"{FIELD}.allowedClients"),
        ({"allowedClients": [7]}, f"{FIELD}.allowedClients"),
        ({"allowedScopes": ["two words"]}, f"{FIELD}.allowedScopes"),
        ({"allowedScopes": ['quo"te']}, f"{FIELD}.allowedScopes"),
        ({"customClaims": []}, f"{FIELD}.customClaims"),
        ({"customClaims": {"a": 1}}, f"{FIELD}.customClaims"),
        ({"customClaims": ["department"]}, RULE),
        ({"customClaims": [{**claim_rule("STRING", "EQUALS", {}), "inboundTokenClaimName": "a b"}]},
         f"{RULE}.inboundTokenClaimName"),
        ({"customClaims": [claim_rule("NUMBER", "EQUALS", {"matchValueString": "x"})]},
         f"{RULE}.inboundTokenClaimValueType"),
        ({"customClaims": [claim_rule("STRING", "LIKE", {"matchValueString": "x"})]},
         f"{MATCH}.claimMatchOperator"),
        ({"customClaims": [claim_rule("STRING", "CONTAINS", {"matchValueString": "x"})]},
         f"{MATCH}.claimMatchOperator"),
        ({"customClaims": [claim_rule("STRING_ARRAY", "EQUALS", {"matchValueString": "x"})]},
         f"{MATCH}.claimMatchOperator"),
        ({"customClaims": [claim_rule("STRING", "EQUALS", "x")]}, MATCH),
        ({"customClaims": [claim_rule("STRING", "EQUALS", {"matchValueStringList": ["x"]})]},
         f"{MATCH}.claimMatchValue"),
        ({"customClaims": [claim_rule("STRING", "EQUALS", {"matchValueString": "x", "other": "y"})]},
         f"{MATCH}.claimMatchValue"),
        ({"customClaims": [claim_rule("STRING", "EQUALS", {"matchValueString": "a b"})]},
         f"{MATCH}.claimMatchValue.matchValueString"),
        ({"customClaims": [claim_rule("STRING_ARRAY", "CONTAINS", {"matchValueString": ["x"]})]},
         f"{MATCH}.claimMatchValue.matchValueString"),
        ({"customClaims": [claim_rule("STRING_ARRAY", "CONTAINS_ANY", {"matchValueStringList": []})]},
         f"{MATCH}.claimMatchValue.matchValueStringList"),
        ({"customClaims": [claim_rule("STRING_ARRAY", "CONTAINS_ANY", {"matchValueStringList": "x"})]},
         f"{MATCH}.claimMatchValue.matchValueStringList"),
    ],
)  # fmt: skip
def test_invalid_fields_are_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidAuthorizerConfig) as caught:
        validate_authorizer_config(
            {"discoveryUrl": "https://idp.example.com/.well-known/openid-configuration", **fields}
        )
    assert caught.value.field == field


def test_a_configuration_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidAuthorizerConfig) as caught:
        validate_authorizer_config(["https://idp.example.com/.well-known/openid-configuration"])  # type: ignore[arg-type]
    assert caught.value.field == FIELD


# The issuer check ------------------------------------------------------------------------------


async def test_check_issuer_returns_the_issuer_and_its_key_ids(issuer: OidcIssuer) -> None:
    metadata = await check_issuer(issuer.discovery_url)
    assert metadata.issuer == issuer.issuer
    assert metadata.jwks_uri == issuer.url + JWKS_PATH
    assert sorted(kid or "" for kid in metadata.key_ids) == ["ec-256", "ec-384", "rsa-1"]


async def test_check_issuer_on_a_closed_port_says_the_issuer_is_unreachable() -> None:
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
        with pytest.raises(IssuerUnreachable) as caught:
            await check_issuer(url)
    assert "could not be reached" in str(caught.value) and url in str(caught.value)
    assert (caught.value.wire_name, caught.value.status) == ("InternalServerException", 500)


@pytest.mark.parametrize(
    ("path", "response", "says"),
    [
        (DISCOVERY_PATH, Response(404, b"{}"), "answered HTTP 404"),
        (DISCOVERY_PATH, Response(302, b""), "answered HTTP 302"),
        (DISCOVERY_PATH, Response(200, b"<html>login</html>", "text/html"), "not valid JSON"),
        (DISCOVERY_PATH, Response(200, b"[1, 2]"), "not a JSON object"),
        (DISCOVERY_PATH, Response(200, b'{"jwks_uri": "https://idp.example.com/jwks"}'), "has no issuer"),
        (DISCOVERY_PATH, Response(200, b'{"issuer": "https://idp.example.com"}'), "has no jwks_uri"),
        (
            DISCOVERY_PATH,
            Response(200, b'{"issuer": "i", "jwks_uri": "http://idp.example.com/jwks"}'),
            "https",
        ),
        (DISCOVERY_PATH, Response(200, b"[" * 100_000 + b"]" * 100_000), "not valid JSON"),
        (JWKS_PATH, Response(500, b"{}"), "answered HTTP 500"),
        (JWKS_PATH, Response(200, b"keys"), "not valid JSON"),
        (JWKS_PATH, Response(200, b'{"keys": {}}'), "no keys list"),
        (JWKS_PATH, Response(200, b" " * 1_100_000), "bytes"),
    ],
)
async def test_check_issuer_says_what_is_wrong_with_the_issuer(
    issuer: OidcIssuer, path: str, response: Response, says: str
) -> None:
    issuer.respond(path, response)
    with pytest.raises(IssuerUnreachable) as caught:
        await check_issuer(issuer.discovery_url)
    assert says in str(caught.value)


async def test_unusable_jwks_members_are_skipped(issuer: OidcIssuer) -> None:
    usable = public_jwk(rsa_key(0), "rsa-1")
    members = [
        usable,
        "not a key",
        {"kty": "oct", "k": b64(b"secret"), "kid": "hmac"},
        {**public_jwk(rsa_key(0), "enc"), "use": "enc"},
        {**public_jwk(ec_key("P-256"), "bad-ec"), "x": 5},
        {"kty": "RSA", "kid": "no-modulus", "e": "AQAB"},
        {**usable, "kid": 7},
        {"kty": "OKP", "crv": "Ed25519", "x": b64(b"0" * 32), "kid": "ed"},
    ]
    issuer.respond(JWKS_PATH, Response(200, json.dumps({"keys": members}).encode()))
    assert (await check_issuer(issuer.discovery_url)).key_ids == ("rsa-1",)


# Accepted tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kid", "alg"),
    [("rsa-1", "RS256"), ("rsa-1", "RS384"), ("rsa-1", "RS512"), ("rsa-1", "PS256"),
     ("ec-256", "ES256"), ("ec-384", "ES384")],
)  # fmt: skip
async def test_each_allowed_algorithm_is_accepted(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer, kid: str, alg: str
) -> None:
    claims = await authorizer.verify(token(issuer, clock, kid, alg), config(issuer))
    assert claims["iss"] == issuer.issuer and claims.user_id == "user-1"


async def test_verified_claims_carry_the_user_id_and_scopes(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    claims = await authorizer.verify(
        token(issuer, clock, sub="alice", scope="read write", scp=["admin"], department="eng"), config(issuer)
    )
    assert isinstance(claims, Claims)
    assert claims.user_id == "alice" and claims.scopes == {"read", "write", "admin"}
    assert dict(claims)["department"] == "eng"
    assert "alice" not in repr(claims)


async def test_a_token_without_sub_has_no_user_id(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    assert (await authorizer.verify(token(issuer, clock, sub=None), config(issuer))).user_id is None


async def test_a_token_without_kid_is_checked_against_the_fitting_keys(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    issuer.add_key(None, rsa_key(1), publish=False)
    issuer.publish("rsa-2", rsa_key(1))
    claims = await authorizer.verify(issuer.sign(issuer.claims(now=clock.now), None), config(issuer))
    assert claims.user_id == "user-1"


async def test_a_parsed_configuration_is_accepted_as_well(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    parsed = JwtAuthorizerConfig.from_wire(config(issuer, allowedAudience=["api"]))
    assert (await authorizer.verify(token(issuer, clock), parsed)).user_id == "user-1"


async def test_an_invalid_wire_configuration_is_reported_by_verify(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    with pytest.raises(InvalidAuthorizerConfig):
        await authorizer.verify(token(issuer, clock), {"discoveryUrl": "http://idp.example.com/x"})


# A missing token -------------------------------------------------------------------------------


async def test_an_empty_token_is_unauthorized(issuer: OidcIssuer, authorizer: JwtAuthorizer) -> None:
    with pytest.raises(MissingBearerToken) as caught:
        await authorizer.verify("", config(issuer))
    assert (caught.value.wire_name, caught.value.status) == ("UnauthorizedException", 401)
    assert issuer.hits[DISCOVERY_PATH] == 0


@pytest.mark.parametrize(("header", "expected"), [("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer  x ", "x")])
def test_bearer_token_reads_an_authorization_header(header: str, expected: str) -> None:
    assert bearer_token(header) == expected


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "AWS4-HMAC-SHA256 x"]
)
def test_bearer_token_without_a_bearer_token_is_unauthorized(header: str | None) -> None:
    with pytest.raises(MissingBearerToken) as caught:
        bearer_token(header)
    assert caught.value.status == 401


# Rejected tokens: one check each -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "check"),
    [
        ({"exp": -LEEWAY - 1}, TokenCheck.EXPIRED),
        ({"exp": -LEEWAY}, TokenCheck.EXPIRED),
        ({"nbf": LEEWAY + 1}, TokenCheck.NOT_YET_VALID),
        ({"iat": LEEWAY + 1}, TokenCheck.NOT_YET_VALID),
    ],
)
async def test_token_times_outside_the_leeway_are_refused(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer, claims: dict[str, float], check: TokenCheck
) -> None:
    times = {name: clock.now + offset for name, offset in claims.items()}
    error = await rejected(authorizer, token(issuer, clock, **times), config(issuer))
    assert error.check is check and f"({check.value})" in str(error)


async def test_token_times_inside_the_leeway_are_accepted(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    times = {"exp": clock.now - LEEWAY + 1, "nbf": clock.now + LEEWAY - 1, "iat": clock.now + LEEWAY - 1}
    assert await authorizer.verify(token(issuer, clock, **times), config(issuer))


@pytest.mark.parametrize(
    "claims", [{"exp": None}, {"exp": "tomorrow"}, {"exp": True}, {"nbf": [1]}, {"iat": float("nan")}]
)
async def test_missing_or_non_numeric_times_are_malformed(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer, claims: dict[str, Any]
) -> None:
    error = await rejected(authorizer, token(issuer, clock, **claims), config(issuer))
    assert error.check is TokenCheck.MALFORMED


@pytest.mark.parametrize("iss", [None, "https://other.example.com", ["x"]])
async def test_another_issuer_is_refused(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer, iss: Any
) -> None:
    error = await rejected(authorizer, rs256(issuer.claims(now=clock.now, iss=iss)), config(issuer))
    assert error.check is TokenCheck.ISSUER and "(issuer)" in str(error)


@pytest.mark.parametrize(
    ("claims", "check", "fields"),
    [
        ({"aud": "other"}, TokenCheck.AUDIENCE, {"allowedAudience": ["api"]}),
        ({"aud": None}, TokenCheck.AUDIENCE, {"allowedAudience": ["api"]}),
        ({"aud": ["x", "y"]}, TokenCheck.AUDIENCE, {"allowedAudience": ["api"]}),
        ({"aud": {"api": 1}}, TokenCheck.AUDIENCE, {"allowedAudience": ["api"]}),
        ({"client_id": "c-9"}, TokenCheck.CLIENT, {"allowedClients": ["c-1"]}),
        ({"client_id": "c-9", "aud": "c-1"}, TokenCheck.CLIENT, {"allowedClients": ["c-1"]}),
        ({"client_id": None, "aud": "api"}, TokenCheck.CLIENT, {"allowedClients": ["c-1"]}),
        ({"client_id": ["c-1"]}, TokenCheck.CLIENT, {"allowedClients": ["c-1"]}),
        ({"scope": "read write"}, TokenCheck.SCOPE, {"allowedScopes": ["agent/invoke"]}),
        ({"scp": ["read"]}, TokenCheck.SCOPE, {"allowedScopes": ["agent/invoke"]}),
        ({}, TokenCheck.SCOPE, {"allowedScopes": ["agent/invoke"]}),
        ({"scope": 5}, TokenCheck.SCOPE, {"allowedScopes": ["agent/invoke"]}),
    ],
)
async def test_audience_client_and_scope_outside_the_allowed_lists_are_refused(
    issuer: OidcIssuer,
    clock: Clock,
    authorizer: JwtAuthorizer,
    claims: dict[str, Any],
    check: TokenCheck,
    fields: dict[str, Any],
) -> None:
    error = await rejected(authorizer, token(issuer, clock, **claims), config(issuer, **fields))
    assert error.check is check and f"({check.value})" in str(error)


@pytest.mark.parametrize(
    ("claims", "fields"),
    [
        ({"aud": "api"}, {"allowedAudience": ["api", "other"]}),
        ({"aud": ["x", "api"]}, {"allowedAudience": ["api"]}),
        ({"client_id": "c-1", "aud": None}, {"allowedClients": ["c-1"]}),
        ({"aud": "c-1"}, {"allowedClients": ["c-1"]}),
        ({"scope": "read agent/invoke"}, {"allowedScopes": ["agent/invoke"]}),
        ({"scp": ["agent/invoke"]}, {"allowedScopes": ["agent/invoke", "x"]}),
        ({"scp": "agent/invoke read"}, {"allowedScopes": ["agent/invoke"]}),
        ({"aud": "api", "client_id": "c-1", "scope": "s"},
         {"allowedAudience": ["api"], "allowedClients": ["c-1"], "allowedScopes": ["s"]}),
    ],
)  # fmt: skip
async def test_audience_client_and_scope_in_the_allowed_lists_are_accepted(
    issuer: OidcIssuer,
    clock: Clock,
    authorizer: JwtAuthorizer,
    claims: dict[str, Any],
    fields: dict[str, Any],
) -> None:
    assert await authorizer.verify(token(issuer, clock, **claims), config(issuer, **fields))


EQUALS = claim_rule("STRING", "EQUALS", {"matchValueString": "eng"})
CONTAINS = {
    **claim_rule("STRING_ARRAY", "CONTAINS", {"matchValueString": "admin"}),
    "inboundTokenClaimName": "roles",
}
CONTAINS_ANY = {
    **claim_rule("STRING_ARRAY", "CONTAINS_ANY", {"matchValueStringList": ["read", "write"]}),
    "inboundTokenClaimName": "cognito:groups",
}


@pytest.mark.parametrize(
    ("rule", "claims"),
    [
        (EQUALS, {"department": "eng"}),
        (CONTAINS, {"roles": ["user", "admin"]}),
        (CONTAINS_ANY, {"cognito:groups": ["write"]}),
        (CONTAINS_ANY, {"cognito:groups": [1, "read", None]}),
    ],
)
async def test_custom_claims_that_match_their_rule_are_accepted(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer, rule: dict[str, Any], claims: dict[str, Any]
) -> None:
    assert await authorizer.verify(token(issuer, clock, **claims), config(issuer, customClaims=[rule]))


@pytest.mark.parametrize(
    ("rule", "claims"),
    [
        (EQUALS, {"department": "sales"}),
        (EQUALS, {"department": "Eng"}),
        (EQUALS, {}),
        (EQUALS, {"department": ["eng"]}),
        (CONTAINS, {"roles": ["user"]}),
        (CONTAINS, {"roles": "admin"}),
        (CONTAINS, {"roles": []}),
        (CONTAINS_ANY, {"cognito:groups": ["admin"]}),
        (CONTAINS_ANY, {"cognito:groups": "read"}),
        (CONTAINS_ANY, {"cognito:groups": {"read": True}}),
    ],
)
async def test_custom_claims_that_fail_their_rule_are_refused_by_name(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer, rule: dict[str, Any], claims: dict[str, Any]
) -> None:
    name = rule["inboundTokenClaimName"]
    error = await rejected(authorizer, token(issuer, clock, **claims), config(issuer, customClaims=[rule]))
    assert error.check is TokenCheck.CLAIM and error.claim == name
    assert f"(claim {name})" in str(error)


async def test_every_custom_claim_rule_must_hold(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    rules = config(issuer, customClaims=[EQUALS, CONTAINS, CONTAINS_ANY])
    both = {"department": "eng", "roles": ["admin"]}
    assert await authorizer.verify(token(issuer, clock, **both, **{"cognito:groups": ["read"]}), rules)
    error = await rejected(authorizer, token(issuer, clock, **both), rules)
    assert error.claim == "cognito:groups" and "(claim cognito:groups)" in str(error)


async def test_a_tampered_payload_fails_the_signature(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    header, _, signature = token(issuer, clock).split(".")
    payload = token(issuer, clock, sub="admin").split(".")[1]
    error = await rejected(authorizer, f"{header}.{payload}.{signature}", config(issuer))
    assert error.check is TokenCheck.SIGNATURE and "(signature)" in str(error)


@pytest.mark.parametrize(("kid", "alg"), [("rsa-1", "RS256"), ("ec-256", "ES256")])
async def test_a_token_signed_by_another_key_under_a_published_kid_fails_the_signature(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer, kid: str, alg: str
) -> None:
    issuer.add_key(kid, rsa_key(1) if alg == "RS256" else ec_key("P-256", 1), publish=False)
    error = await rejected(authorizer, token(issuer, clock, kid, alg), config(issuer))
    assert error.check is TokenCheck.SIGNATURE


@pytest.mark.parametrize(("kid", "alg"), [("rsa-1", "RS256"), ("ec-256", "ES256")])
@pytest.mark.parametrize("cut", [8, None])
async def test_a_truncated_or_missing_signature_fails_the_signature(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer, kid: str, alg: str, cut: int | None
) -> None:
    whole = token(issuer, clock, kid, alg)
    text = whole[:-cut] if cut else whole.rsplit(".", 1)[0] + "."
    assert (await rejected(authorizer, text, config(issuer))).check is TokenCheck.SIGNATURE


RS_HEADER = {"alg": "RS256", "kid": "rsa-1"}
RS_SEGMENT = b64(json.dumps(RS_HEADER).encode())


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("not-a-token", id="one-segment"),
        pytest.param("a.b", id="two-segments"),
        pytest.param("a.b.c.d.e", id="encrypted-jwe"),
        pytest.param("!!!.???.###", id="not-base64url"),
        pytest.param("eyJ.eyJ.e", id="truncated-json"),
        pytest.param("a" * 20_000 + ".b.c", id="oversized"),
        pytest.param(assemble(RS_HEADER, {"sub": "x"}).replace(".", " . "), id="spaces"),
        pytest.param(b64(b"not json") + "." + assemble(RS_HEADER, {}).split(".", 1)[1], id="header-not-json"),
        pytest.param(b64(b"\xff\xfe") + "." + assemble(RS_HEADER, {}).split(".", 1)[1], id="header-not-utf8"),
        pytest.param(assemble(["RS256"], {}), id="header-a-list"),
        pytest.param(assemble(RS_HEADER, ["sub"]), id="payload-a-list"),
        pytest.param(assemble(RS_HEADER, "sub"), id="payload-a-string"),
        pytest.param(b64(b'{"alg": "RS256", "alg": "none"}') + "." + b64(b"{}") + ".", id="duplicate-alg"),
        pytest.param(RS_SEGMENT + "." + b64(b'{"sub": "a", "sub": "b"}') + ".", id="duplicate-sub"),
        pytest.param(RS_SEGMENT + "." + b64(b'{"exp": Infinity}') + ".", id="infinity"),
        pytest.param(assemble({**RS_HEADER, "crit": ["exp"]}, {}), id="crit"),
        pytest.param(assemble({**RS_HEADER, "kid": 1}, {}), id="numeric-kid"),
        pytest.param(assemble(RS_HEADER, {}) + "A", id="signature-length"),
    ],
)
async def test_malformed_tokens_are_refused_without_contacting_the_issuer(
    issuer: OidcIssuer, authorizer: JwtAuthorizer, text: str
) -> None:
    error = await rejected(authorizer, text, config(issuer))
    assert error.check is TokenCheck.MALFORMED and "(malformed)" in str(error)
    assert issuer.hits[DISCOVERY_PATH] == 0


async def test_an_unknown_kid_is_refused(issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer) -> None:
    issuer.add_key("unpublished", rsa_key(1), publish=False)
    error = await rejected(authorizer, token(issuer, clock, "unpublished"), config(issuer))
    assert error.check is TokenCheck.UNKNOWN_KEY and "(unknown key)" in str(error)


async def test_alg_none_is_refused(issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer) -> None:
    for header in ({"alg": "none"}, {"alg": "none", "kid": "rsa-1"}, {"alg": "None"}, {"typ": "JWT"}):
        error = await rejected(authorizer, assemble(header, issuer.claims(now=clock.now)), config(issuer))
        assert error.check is TokenCheck.ALGORITHM and "(algorithm)" in str(error)
    assert issuer.hits[DISCOVERY_PATH] == 0


async def test_hs256_signed_with_the_public_key_is_refused(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    public = rsa_key(0).public_key()
    secrets = [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        json.dumps(RSAAlgorithm.to_jwk(public, as_dict=True)).encode(),
    ]
    for secret in secrets:
        for alg in ("HS256", "HS384", "HS512"):
            forged = hs256({"alg": alg, "kid": "rsa-1"}, issuer.claims(now=clock.now), secret)
            error = await rejected(authorizer, forged, config(issuer))
            assert error.check is TokenCheck.ALGORITHM


async def test_a_kid_naming_an_hmac_key_in_the_jwks_is_unknown(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    jwks = {"keys": [public_jwk(rsa_key(0), "rsa-1"), {"kty": "oct", "k": b64(b"secret"), "kid": "hmac"}]}
    issuer.respond(JWKS_PATH, Response(200, json.dumps(jwks).encode()))
    forged = assemble({"alg": "RS256", "kid": "hmac"}, issuer.claims(now=clock.now), b"x" * 256)
    assert (await rejected(authorizer, forged, config(issuer))).check is TokenCheck.UNKNOWN_KEY


@pytest.mark.parametrize(
    ("kid", "alg", "signer"),
    [
        ("ec-256", "RS256", "rsa-1"),  # an RSA signature presented against an EC key
        ("rsa-1", "ES256", "ec-256"),
        ("ec-384", "ES256", "ec-256"),  # the curve must fit the algorithm too
        ("ec-256", "ES384", "ec-384"),
    ],
)
async def test_the_algorithm_is_pinned_to_the_key_type(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer, kid: str, alg: str, signer: str
) -> None:
    signed = issuer.sign(issuer.claims(now=clock.now), signer, alg, kid=kid)
    error = await rejected(authorizer, signed, config(issuer))
    assert error.check is TokenCheck.ALGORITHM


async def test_a_key_whose_jwk_names_another_algorithm_is_not_used(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    issuer.publish("rsa-1", rsa_key(0), alg="RS384")
    assert (await authorizer.verify(token(issuer, clock, "rsa-1", "RS384"), config(issuer))).user_id
    error = await rejected(authorizer, token(issuer, clock, "rsa-1", "RS256"), config(issuer))
    assert error.check is TokenCheck.ALGORITHM


@pytest.mark.parametrize("alg", ["HS256", "ES512", "EdDSA", "RS1", "PS384", "", "rs256"])
async def test_other_algorithms_are_refused_before_any_fetch(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer, alg: str
) -> None:
    forged = assemble({"alg": alg, "kid": "rsa-1"}, issuer.claims(now=clock.now), b"x" * 64)
    assert (await rejected(authorizer, forged, config(issuer))).check is TokenCheck.ALGORITHM
    assert issuer.hits[DISCOVERY_PATH] == 0


# Keys and the cache ----------------------------------------------------------------------------


async def test_a_rotated_key_is_fetched_once_then_accepted(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    await authorizer.verify(token(issuer, clock), config(issuer))
    issuer.add_key("rsa-2", rsa_key(1))
    assert (await authorizer.verify(token(issuer, clock, "rsa-2"), config(issuer))).user_id
    assert (await authorizer.verify(token(issuer, clock, "rsa-2"), config(issuer))).user_id
    assert (issuer.hits[DISCOVERY_PATH], issuer.hits[JWKS_PATH]) == (1, 2)


async def test_bogus_kids_refetch_the_jwks_at_most_once_per_interval(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    await authorizer.verify(token(issuer, clock), config(issuer))
    issuer.add_key("rsa-2", rsa_key(1), publish=False)
    for index in range(25):
        forged = issuer.sign(issuer.claims(now=clock.now), "rsa-2", kid=f"bogus-{index}")
        assert (await rejected(authorizer, forged, config(issuer))).check is TokenCheck.UNKNOWN_KEY
    assert issuer.hits[JWKS_PATH] == 2
    clock.advance(REFETCH_INTERVAL - 1)
    await rejected(authorizer, issuer.sign(issuer.claims(now=clock.now), "rsa-2", kid="late"), config(issuer))
    assert issuer.hits[JWKS_PATH] == 2
    clock.advance(2)
    await rejected(
        authorizer, issuer.sign(issuer.claims(now=clock.now), "rsa-2", kid="later"), config(issuer)
    )
    assert (issuer.hits[DISCOVERY_PATH], issuer.hits[JWKS_PATH]) == (1, 3)


async def test_the_issuer_is_cached_until_its_ttl_passes(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    for _ in range(3):
        await authorizer.verify(token(issuer, clock), config(issuer))
    clock.advance(CACHE_TTL - 1)
    await authorizer.verify(token(issuer, clock), config(issuer))
    assert (issuer.hits[DISCOVERY_PATH], issuer.hits[JWKS_PATH]) == (1, 1)
    clock.advance(1)
    await authorizer.verify(token(issuer, clock), config(issuer))
    assert (issuer.hits[DISCOVERY_PATH], issuer.hits[JWKS_PATH]) == (2, 2)


async def test_a_withdrawn_key_is_refused_once_the_cache_expires(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    await authorizer.verify(token(issuer, clock, "ec-256", "ES256"), config(issuer))
    issuer.unpublish("ec-256")
    await authorizer.verify(token(issuer, clock, "ec-256", "ES256"), config(issuer))
    clock.advance(CACHE_TTL)
    error = await rejected(authorizer, token(issuer, clock, "ec-256", "ES256"), config(issuer))
    assert error.check is TokenCheck.UNKNOWN_KEY


async def test_a_clock_that_goes_back_refreshes_the_cache(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    await authorizer.verify(token(issuer, clock), config(issuer))
    clock.advance(-3600)
    await authorizer.verify(token(issuer, clock), config(issuer))
    assert issuer.hits[DISCOVERY_PATH] == 2


async def test_concurrent_first_requests_fetch_the_issuer_once(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    results: list[Claims] = []

    async def verify_one() -> None:
        results.append(await authorizer.verify(token(issuer, clock), config(issuer)))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(verify_one)
    assert len(results) == 10
    assert (issuer.hits[DISCOVERY_PATH], issuer.hits[JWKS_PATH]) == (1, 1)


async def test_issuers_are_cached_per_discovery_url(clock: Clock, authorizer: JwtAuthorizer) -> None:
    with start_issuer() as first, start_issuer() as second:
        await authorizer.verify(token(first, clock), config(first))
        await authorizer.verify(token(second, clock), config(second))
        error = await rejected(authorizer, token(first, clock), config(second))
        assert error.check is TokenCheck.ISSUER
        assert first.hits[DISCOVERY_PATH] == second.hits[DISCOVERY_PATH] == 1


# An unreachable issuer -------------------------------------------------------------------------


async def test_an_unreachable_issuer_is_an_internal_error_naming_the_issuer(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    signed = token(issuer, clock)
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
        with pytest.raises(IssuerUnreachable) as caught:
            await authorizer.verify(signed, {"discoveryUrl": url})
    assert (caught.value.wire_name, caught.value.status) == ("InternalServerException", 500)
    assert "JWT issuer could not be reached" in str(caught.value) and url in str(caught.value)
    assert_token_absent(caught.value, signed)


async def test_a_failed_fetch_is_not_retried_until_the_retry_interval_passes(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    issuer.respond(DISCOVERY_PATH, Response(503, b"{}"))
    for _ in range(5):
        with pytest.raises(IssuerUnreachable, match="HTTP 503"):
            await authorizer.verify(token(issuer, clock), config(issuer))
    assert issuer.hits[DISCOVERY_PATH] == 1
    issuer.respond(DISCOVERY_PATH, None)
    clock.advance(RETRY_INTERVAL)
    assert (await authorizer.verify(token(issuer, clock), config(issuer))).user_id
    assert issuer.hits[DISCOVERY_PATH] == 2


async def test_an_unreachable_jwks_on_key_rotation_is_an_internal_error(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer
) -> None:
    await authorizer.verify(token(issuer, clock), config(issuer))
    issuer.respond(JWKS_PATH, Response(500, b""))
    issuer.add_key("rsa-2", rsa_key(1))
    with pytest.raises(IssuerUnreachable):
        await authorizer.verify(token(issuer, clock, "rsa-2"), config(issuer))
    assert (await authorizer.verify(token(issuer, clock), config(issuer))).user_id  # the cache still serves


async def test_an_authorizer_closes_only_the_client_it_made(issuer: OidcIssuer, clock: Clock) -> None:
    async with httpx.AsyncClient() as client:
        async with JwtAuthorizer(client, clock=clock) as authorizer:
            assert (await authorizer.verify(token(issuer, clock), config(issuer))).user_id
        assert not client.is_closed
    async with JwtAuthorizer(clock=clock) as authorizer:
        assert (await authorizer.verify(token(issuer, clock), config(issuer))).user_id
        owned = authorizer._client
    assert owned is not None and owned.is_closed


# Tokens stay secret ----------------------------------------------------------------------------


async def test_no_log_record_contains_the_token(
    issuer: OidcIssuer, clock: Clock, authorizer: JwtAuthorizer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = token(issuer, clock)
    bad = token(issuer, clock, aud="other")
    await authorizer.verify(good, config(issuer))
    await rejected(authorizer, bad, config(issuer, allowedAudience=["api"]))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (good, bad):
        assert not [secret[i : i + 12] for i in range(len(secret) - 11) if secret[i : i + 12] in logged]


# Fuzzing the parser ----------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
CLAIM_NAMES = st.sampled_from(
    ["iss", "sub", "aud", "exp", "nbf", "iat", "client_id", "scope", "scp", "roles", "department"]
)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["RS256", "ES256", "ES384", "PS256", "HS256", "none", ""]) | JSON,
        "kid": st.sampled_from(["rsa-1", "ec-256", "ec-384", "missing"]) | JSON,
        "crit": JSON,
        "typ": JSON,
    },
)
PAYLOADS = st.dictionaries(CLAIM_NAMES | st.text(max_size=8), JSON, max_size=8) | JSON
THE_ISSUER = "<the issuer>"
# Changes to a valid claim set: near-miss values, seconds from now for the times, or any JSON.
CLAIM_CHANGES = st.dictionaries(
    CLAIM_NAMES,
    st.sampled_from(["api", ["api"], "read", "read write", ["admin"], "eng", THE_ISSUER])
    | st.integers(-2 * int(LEEWAY), 2 * int(LEEWAY))
    | JSON,
    max_size=4,
)
FUZZ_RULES = {"allowedAudience": ["api"], "allowedScopes": ["read"], "customClaims": [CONTAINS, EQUALS]}


@pytest.fixture(scope="module")
def fuzz_issuer() -> Iterator[OidcIssuer]:
    with start_issuer() as running:
        yield running


async def fuzz_verdict(issuer: OidcIssuer, tls: ssl.SSLContext, text: str) -> Claims | TokenRejected:
    """Verify with every check configured: the claims, or the typed refusal (any other error fails)."""
    async with httpx.AsyncClient(verify=tls) as client, JwtAuthorizer(client) as authorizer:
        try:
            claims = await authorizer.verify(text, config(issuer, **FUZZ_RULES))
        except TokenRejected as error:
            event(error.check.value)  # --hypothesis-show-statistics shows which checks were reached
            assert_token_absent(error, text)
            return error
    event("accepted")
    return claims


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300) | st.text("abcXYZ019-_.", max_size=300))
async def test_any_text_is_refused_with_a_typed_error(
    fuzz_issuer: OidcIssuer, tls: ssl.SSLContext, text: str
) -> None:
    async with httpx.AsyncClient(verify=tls) as client, JwtAuthorizer(client) as authorizer:
        with pytest.raises((TokenRejected, MissingBearerToken)):
            await authorizer.verify(text, config(fuzz_issuer))


@settings(max_examples=150, deadline=None)
@given(header=HEADERS | JSON, payload=PAYLOADS, signature=st.binary(max_size=300))
async def test_random_headers_and_payloads_are_refused_with_a_typed_error(
    fuzz_issuer: OidcIssuer, tls: ssl.SSLContext, header: Any, payload: Any, signature: bytes
) -> None:
    verdict = await fuzz_verdict(fuzz_issuer, tls, assemble(header, payload, signature))
    assert isinstance(verdict, TokenRejected)


@settings(max_examples=100, deadline=None)
@given(changes=CLAIM_CHANGES, extra_header=st.dictionaries(st.sampled_from(["typ", "cty", "x5u"]), JSON))
async def test_signed_tokens_with_odd_claims_get_a_verdict_or_a_typed_error(
    fuzz_issuer: OidcIssuer, tls: ssl.SSLContext, changes: dict[str, Any], extra_header: dict[str, Any]
) -> None:
    now = int(time.time())
    for name, value in changes.items():
        if value == THE_ISSUER:
            changes[name] = fuzz_issuer.issuer
        elif name in ("exp", "nbf", "iat") and type(value) is int and abs(value) <= 2 * LEEWAY:
            changes[name] = now + value
    payload = {**fuzz_issuer.claims(now=now, scope="read", roles=["admin"], department="eng"), **changes}
    verdict = await fuzz_verdict(fuzz_issuer, tls, rs256(payload, {**extra_header, **RS_HEADER}))
    if isinstance(verdict, Claims):
        assert verdict["aud"] == "api" or "api" in verdict["aud"]
        assert "read" in verdict.scopes and verdict["department"] == "eng"
