"""The runtime server as the CLI talks to it: found, credentialed, started when it is local and down.

Requests are signed with our own SigV4 signer (the CLI needs no botocore). Errors come back as
the server's AWS error shapes and leave here as one-line `CliError`s naming the error type.
httpx is imported on the first request, so commands that never talk to a server do not pay for it.
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
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from open_agentcore.auth.credentials import ENV_KEY_ID, FILE_NAME, CredentialsError, load_admin_credential
from open_agentcore.auth.signing import sign_headers
from open_agentcore.auth.sigv4 import Credential

from . import endpoint as endpoints
from .endpoint import DEFAULT_ENDPOINT, Endpoint
from .errors import CliError

if TYPE_CHECKING:
    import httpx

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
    """The server URL this command talks to (see `endpoint.resolve` for the order)."""
    return endpoints.resolve(environ).url


def is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in {host.strip("[]") for host in LOOPBACK}


def region(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def tls_verification(url: str, environ: Mapping[str, str] = os.environ) -> ssl.SSLContext:
    """How the server's certificate is checked: against $AGENTCORE_CA_BUNDLE, else the certificate a
    local server recorded when it is self-signed, else the system's CAs."""
    if urlsplit(url).scheme != "https":
        return _no_tls()
    bundle = environ.get(CA_BUNDLE_ENV) or None
    record = endpoints.read_record(endpoints.default_data_dir(environ))
    if bundle is None and record is not None and record.url == url and record.self_signed and record.tls_cert:
        return pinned(record.tls_cert)
    return _trusting(bundle)


@functools.lru_cache(maxsize=4)
def pinned(cert: str) -> ssl.SSLContext:
    """Trust exactly a server's own certificate, whoever issued it.

    The pin is the identity, so the host name is not checked (the server may listen on 0.0.0.0).
    """
    from open_agentcore.server.tls import TlsError, leaf_certificate

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        context.load_verify_locations(cadata=leaf_certificate(Path(cert)))
    except (OSError, ssl.SSLError, TlsError) as error:
        raise CliError(f"cannot use the server's TLS certificate {cert}: {error}") from None
    return context


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
    down_hint: str = "is it running?"  # what to run when nothing answers at `url`

    @classmethod
    def connect(cls, start: bool = False, environ: Mapping[str, str] = os.environ) -> RuntimeServer:
        """The server this command talks to (`endpoint.resolve`).

        With `start`, a local one that does not answer is started on the same address (unless it
        needs a certificate only the user has). Without, nothing is probed: the first request
        finds out, which saves a round trip per command.
        """
        chosen = endpoints.resolve(environ)
        url = chosen.url
        verify = tls_verification(url, environ)
        if start and not healthy(url, verify=verify):
            tls = urlsplit(url).scheme == "https" or (chosen.record is not None and chosen.record.tls_cert)
            if not (is_loopback(url) and not tls):
                raise CliError(f"no runtime server answers at {url} ({chosen.down_hint()})")
            start_local_server(chosen)
        return cls(url, credential_for(chosen, environ), region(environ), verify, chosen.down_hint())

    # Requests --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = 60.0,
    ) -> httpx.Response:
        import httpx

        url = self.url + path
        signed = sign_headers(method, url, self.credential, self.region, body, headers)
        try:
            reply = _client(self._verify()).request(
                method, url, content=body, headers=signed, timeout=timeout
            )
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None
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
        import httpx

        url = self.url + path
        signed = sign_headers(method, url, self.credential, self.region, body, headers)
        try:
            with _client(self._verify()).stream(
                method, url, content=body, headers=signed, timeout=httpx.Timeout(60.0, read=timeout)
            ) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise remote_error(reply)
                yield reply
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None

    def _unreachable(self, error: httpx.HTTPError) -> CliError:
        import httpx

        if reason := _unverified(error):
            return CliError(
                f"cannot verify the TLS certificate of {self.url} ({reason}): "
                f"set {CA_BUNDLE_ENV} to the certificate of the CA that issued it"
            )
        if isinstance(error, httpx.ConnectError):
            return CliError(f"no runtime server answers at {self.url} ({self.down_hint})")
        return CliError(f"the runtime server at {self.url} did not answer: {error}")

    def tls(self) -> ssl.SSLContext:
        """How this server's certificate is checked (also for connections made elsewhere)."""
        return self._verify()

    def _verify(self) -> ssl.SSLContext:
        return self.verify or tls_verification(self.url)

    def sessions(self, runtime_id: str, every: bool = False) -> list[dict[str, Any]]:
        """The runtime's sessions as the server lists them (live; with `every`, ended ones too)."""
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
    import httpx

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


def credential_for(chosen: Endpoint, environ: Mapping[str, str] = os.environ) -> Credential:
    """The local server's admin key for a loopback server started from this machine's data dir,
    else the caller's AWS keys."""
    url = chosen.url
    key_id, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    data_dir = chosen.data_dir
    local_key = environ.get(ENV_KEY_ID) or (data_dir / FILE_NAME).exists()
    if is_loopback(url) and local_key:
        try:
            return load_admin_credential(data_dir, environ)
        except CredentialsError as error:
            raise CliError(str(error)) from None
    if not (key_id and secret):
        raise CliError(f"no credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    return Credential(key_id, secret, "caller")


@functools.lru_cache(maxsize=4)
def _client(verify: ssl.SSLContext) -> httpx.Client:
    # One client per TLS setting and process: a command's requests share a connection.
    import httpx

    return httpx.Client(verify=verify)


def start_local_server(chosen: Endpoint) -> None:
    """Start the server `chosen` names, on its port, from its recorded data dir (else the default)."""
    url = chosen.url
    parts = urlsplit(url)
    port = parts.port or 80
    data_dir = chosen.data_dir
    stop = "agentcore server stop" + (
        "" if data_dir == endpoints.default_data_dir() else f" --data-dir {data_dir}"
    )
    print(f"starting the local runtime server on port {port} (stop it with: {stop})")
    command = [
        sys.executable, "-m", "open_agentcore.cli", "server", "start",
        "--host", parts.hostname or "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
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
