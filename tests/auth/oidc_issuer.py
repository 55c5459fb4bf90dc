"""A real OpenID issuer for tests: an HTTP server on a free loopback port serving a discovery
document and a JWKS, with the private keys to sign tokens for it.

The server socket listens as soon as `OidcIssuer` is built, so no test waits for it to start;
`close()` wakes its thread through a socket pair and joins it, so nothing polls. Tests change
what it publishes (`publish`, `respond`) and read what it was asked for (`hits`).
"""

from __future__ import annotations

import collections
import functools
import json
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@functools.cache
def rsa_key(index: int) -> rsa.RSAPrivateKey:
    """The `index`-th RSA key of the test run (generating 2048-bit keys is slow, so they are kept)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ec_key(curve: str, index: int = 0) -> ec.EllipticCurvePrivateKey:
    """The `index`-th EC key on "P-256" or "P-384"."""
    return ec.generate_private_key(ec.SECP256R1() if curve == "P-256" else ec.SECP384R1())


def public_jwk(key: PrivateKey, kid: str | None, **members: Any) -> dict[str, Any]:
    """The public JWK of a private key, with its `kid` (when given) and any extra members."""
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    return {**jwk, "use": "sig", **members}


@dataclass
class Response:
    """A canned answer that replaces what a path normally serves."""

    status: int
    body: bytes
    content_type: str = "application/json"


class OidcIssuer:
    """An OpenID issuer on `http://127.0.0.1:<free port>`: its identifier is that base URL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._published: dict[str, dict[str, Any]] = {}
        self._overrides: dict[str, Response] = {}
        self._signing: dict[str, PrivateKey] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._wake, self._waker = socket.socketpair()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = self.url
        self.discovery_url = self.url + DISCOVERY_PATH
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self) -> OidcIssuer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and release the port."""
        self._waker.send(b"x")
        self._thread.join(10)
        self._server.server_close()
        self._wake.close()
        self._waker.close()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake, selectors.EVENT_READ)
            while all(key.fileobj is not self._wake for key, _ in selector.select()):
                self._server.handle_request()

    def add_key(self, kid: str | None, key: PrivateKey, *, publish: bool = True, **members: Any) -> None:
        """Keep `key` for signing under `kid`; publish its public half in the JWKS unless told not to."""
        self._signing[kid or ""] = key
        if publish:
            self.publish(kid, key, **members)

    def publish(self, kid: str | None, key: PrivateKey, **members: Any) -> None:
        """Add (or replace) a public key in the JWKS."""
        with self._lock:
            self._published[kid or ""] = public_jwk(key, kid, **members)

    def unpublish(self, kid: str) -> None:
        """Drop a key from the JWKS (tokens it signed stop verifying once caches refresh)."""
        with self._lock:
            self._published.pop(kid, None)

    def respond(self, path: str, response: Response | None) -> None:
        """Serve `response` at `path` instead of the normal document; None restores it."""
        with self._lock:
            if response is None:
                self._overrides.pop(path, None)
            else:
                self._overrides[path] = response

    def claims(self, **claims: Any) -> dict[str, Any]:
        """A valid claim set for this issuer, now, overridden or extended by `claims` (None removes one)."""
        now = int(claims.pop("now", time.time()))
        base = {"iss": self.issuer, "sub": "user-1", "aud": "api", "iat": now, "exp": now + 300}
        merged = {**base, **claims}
        return {name: value for name, value in merged.items() if value is not None}

    def sign(
        self, claims: dict[str, Any], key: str | None = "rsa-1", alg: str = "RS256", **headers: Any
    ) -> str:
        """A token with `claims`, signed with the key kept under `key`.

        Its `kid` header is `key` (none when `key` is None) unless `headers` says otherwise.
        """
        extra = {"kid": key} if key is not None else {}
        return jwt.encode(claims, self._signing[key or ""], algorithm=alg, headers={**extra, **headers})

    def _answer(self, path: str) -> Response:
        with self._lock:
            self.hits[path] += 1
            if path in self._overrides:
                return self._overrides[path]
            if path == DISCOVERY_PATH:
                document = {"issuer": self.issuer, "jwks_uri": self.url + JWKS_PATH}
                return Response(200, json.dumps(document).encode())
            if path == JWKS_PATH:
                return Response(200, json.dumps({"keys": list(self._published.values())}).encode())
        return Response(404, b'{"error": "not found"}')


def _handler(issuer: OidcIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            response = issuer._answer(self.path)
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test output stays clean

    return Handler
