"""The runtime server as the CLI talks to it: found, credentialed, started when it is local and down.

Requests are signed with our own SigV4 signer (the CLI needs no botocore). Errors come back as
the server's AWS error shapes and leave here as one-line `CliError`s naming the error type.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from open_agentcore.auth import Credential, CredentialsError, load_admin_credential, sign_headers
from open_agentcore.auth.credentials import ENV_KEY_ID, FILE_NAME
from open_agentcore.server import agentcore_home

from .errors import CliError

DEFAULT_ENDPOINT = "http://127.0.0.1:8900"
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
USER_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-User-Id"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
CA_BUNDLE_ENV = "AGENTCORE_CA_BUNDLE"
_START_TIMEOUT = 60.0


class RemoteError(CliError):
    """The server answered with an AWS error; `code` is its type (ValidationException, ...)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status


def endpoint_url(environ: Mapping[str, str] = os.environ) -> str:
    return (environ.get("AGENTCORE_ENDPOINT_URL") or DEFAULT_ENDPOINT).rstrip("/")


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in {host.strip("[]") for host in LOOPBACK}


def region(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def tls_verification(url: str, environ: Mapping[str, str] = os.environ) -> ssl.SSLContext:
    """How the server's certificate is checked: against $AGENTCORE_CA_BUNDLE, else the system's CAs."""
    if urlsplit(url).scheme != "https":
        return _no_tls()
    return _trusting(environ.get(CA_BUNDLE_ENV) or None)


@functools.lru_cache(maxsize=4)
def _trusting(bundle: str | None) -> ssl.SSLContext:
    # Built once per process: loading a CA store costs tens of milliseconds.
    try:
        return ssl.create_default_context(cafile=bundle)
    except (OSError, ssl.SSLError) as error:
        raise CliError(f"cannot use {CA_BUNDLE_ENV}={bundle} as CA certificates: {error}") from None


@functools.lru_cache(maxsize=1)
def _no_tls() -> ssl.SSLContext:
    # Plain HTTP verifies nothing; this context trusts no CA, so TLS through it would fail closed.
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


@dataclass
class RuntimeServer:
    """A runtime server at `url`, and the key the CLI signs with."""

    url: str
    credential: Credential
    region: str
    verify: ssl.SSLContext | None = None  # None: as `tls_verification` says for `url`

    @classmethod
    def connect(cls, start: bool = False, environ: Mapping[str, str] = os.environ) -> RuntimeServer:
        """The configured server; with `start`, a local one that does not answer is started."""
        url = endpoint_url(environ)
        verify = tls_verification(url, environ)
        if not healthy(url, verify=verify):
            # A TLS server needs its certificate and key: only the user can start that one.
            tls = urlsplit(url).scheme == "https"
            if not (start and is_loopback(url) and not tls):
                hint = " (start one: agentcore server start)" if is_loopback(url) else ""
                hint = " (start it: agentcore server start --tls-cert FILE --tls-key FILE)" if tls else hint
                raise CliError(f"no runtime server answers at {url}{hint}")
            start_local_server(url)
        return cls(url, credential_for(url, environ), region(environ), verify)

    # Requests --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 60.0,
    ) -> httpx.Response:
        url = self.url + path
        signed = sign_headers(method, url, self.credential, self.region, body, headers)
        try:
            reply = httpx.request(
                method, url, content=body, headers=signed, timeout=timeout, verify=self._verify()
            )
        except httpx.HTTPError as error:
            raise CliError(f"the runtime server at {self.url} did not answer: {error}") from None
        if reply.status_code >= 400:
            raise remote_error(reply)
        return reply

    def json(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = {"content-type": "application/json"} if payload is not None else None
        return self.request(method, path, body, headers).json()

    @contextmanager
    def stream(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str], timeout: float | None = None
    ) -> Iterator[httpx.Response]:
        """A signed request whose response is read as it arrives."""
        url = self.url + path
        signed = sign_headers(method, url, self.credential, self.region, body, headers)
        try:
            with httpx.stream(
                method, url, content=body, headers=signed, timeout=httpx.Timeout(60.0, read=timeout),
                verify=self._verify(),
            ) as reply:  # fmt: skip
                if reply.status_code >= 400:
                    reply.read()
                    raise remote_error(reply)
                yield reply
        except httpx.HTTPError as error:
            raise CliError(f"the runtime server at {self.url} did not answer: {error}") from None

    def tls(self) -> ssl.SSLContext:
        """How this server's certificate is checked (also for connections made elsewhere)."""
        return self._verify()

    def _verify(self) -> ssl.SSLContext:
        return self.verify or tls_verification(self.url)

    # Operations ------------------------------------------------------------------------------

    def upload(self, archive: bytes) -> str:
        reply = self.request(
            "PUT", "/_agentcore/artifacts", archive, {"content-type": "application/zip"}, 600
        )
        return str(reply.json()["key"])

    def get_runtime(self, runtime_id: str) -> dict[str, Any] | None:
        """The runtime, or None when the server has no such id (deleted elsewhere)."""
        try:
            runtime: dict[str, Any] = self.json("GET", f"/runtimes/{runtime_id}/")
        except RemoteError as error:
            if error.code == "ResourceNotFoundException":
                return None
            raise
        return runtime

    def build_log(self, runtime_id: str, version: str) -> str:
        try:
            return self.request("GET", f"/_agentcore/runtimes/{runtime_id}/versions/{version}/build-log").text
        except RemoteError:
            return ""

    def sessions(self, runtime_id: str, every: bool = False) -> list[dict[str, Any]]:
        query = "?state=all" if every else ""
        listed: list[dict[str, Any]] = self.json("GET", f"/_agentcore/runtimes/{runtime_id}/sessions{query}")[
            "sessions"
        ]
        return listed


def runtime_path(arn: str) -> str:
    return f"/runtimes/{quote(arn, safe='')}"


def remote_error(reply: httpx.Response) -> RemoteError:
    code = reply.headers.get("x-amzn-errortype", "").split(":")[0] or f"HTTP {reply.status_code}"
    try:
        message = str(reply.json().get("message") or reply.text)
    except ValueError:
        message = reply.text.strip() or reply.reason_phrase
    return RemoteError(code, message.strip().splitlines()[0] if message.strip() else code, reply.status_code)


def healthy(url: str, timeout: float = 2.0, verify: ssl.SSLContext | None = None) -> bool:
    """Whether the server at `url` answers its health check; a certificate that does not verify is
    a `CliError` (waiting will not fix it)."""
    try:
        reply = httpx.get(url + "/_agentcore/health", timeout=timeout, verify=verify or tls_verification(url))
    except httpx.HTTPError as error:
        if reason := _unverified(error):
            raise CliError(
                f"cannot verify the TLS certificate of {url} ({reason}): "
                f"set {CA_BUNDLE_ENV} to the certificate of the CA that issued it"
            ) from None
        return False
    return reply.status_code == 200


def _unverified(error: BaseException) -> str | None:
    """Why certificate verification failed, when that is what `error` comes from."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return str(cause.verify_message or cause)
        cause = cause.__cause__ or cause.__context__
    return None


def credential_for(url: str, environ: Mapping[str, str] = os.environ) -> Credential:
    """The local server's admin key for a loopback server, else the caller's AWS keys."""
    key_id, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    data_dir = server_data_dir(environ)
    local_key = environ.get(ENV_KEY_ID) or (data_dir / FILE_NAME).exists()
    if is_loopback(url) and local_key:
        try:
            return load_admin_credential(data_dir, environ)
        except CredentialsError as error:
            raise CliError(str(error)) from None
    if not (key_id and secret):
        raise CliError(f"no credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    return Credential(key_id, secret, "caller")


def server_data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return agentcore_home(environ) / "server"


def start_local_server(url: str) -> None:
    parts = urlsplit(url)
    port = parts.port or 80
    print(f"starting the local runtime server on port {port} (stop it with: agentcore server stop)")
    command = [
        sys.executable, "-m", "open_agentcore.cli", "server", "start",
        "--host", parts.hostname or "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=_START_TIMEOUT)  # noqa: S603
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["(no output)"])[-1].removeprefix("agentcore: ")
        raise CliError(f"could not start the local runtime server: {reason}")
    deadline = time.monotonic() + _START_TIMEOUT
    while not healthy(url):
        if time.monotonic() > deadline:
            raise CliError(f"the local runtime server did not answer at {url}")
        time.sleep(0.1)


__all__ = [
    "CA_BUNDLE_ENV",
    "DEFAULT_ENDPOINT",
    "SESSION_HEADER",
    "USER_HEADER",
    "RemoteError",
    "RuntimeServer",
    "endpoint_url",
    "is_loopback",
    "remote_error",
    "runtime_path",
    "tls_verification",
]
