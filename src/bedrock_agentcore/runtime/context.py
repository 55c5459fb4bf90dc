"""Who is calling: the per-request context handed to handlers and readable from anywhere inside them.

Values live in context variables, so concurrent requests never see each other's. Threads started
while a request is being handled (plain `threading.Thread` or a `ThreadPoolExecutor`) inherit the
request's values; see `propagate_to_threads`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import random
import threading
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .models import CUSTOM_HEADER_PREFIX

_T = TypeVar("_T")

_SESSION_HEADER = b"x-amzn-bedrock-agentcore-runtime-session-id"
_REQUEST_ID_HEADER = b"x-amzn-bedrock-agentcore-runtime-request-id"
_AUTHORIZATION = b"authorization"
_CUSTOM_PREFIX = CUSTOM_HEADER_PREFIX.lower().encode("latin-1")
_ACCESS_TOKEN_HEADER = b"workloadaccesstoken"
_OAUTH2_CALLBACK_HEADER = b"oauth2callbackurl"


def canonical_header_name(name: str) -> str:
    """Spell a forwarded header the way the contract documents it, whatever case it arrived in."""
    lower = name.lower()
    if lower == "authorization":
        return "Authorization"
    prefix = CUSTOM_HEADER_PREFIX.lower()
    if lower.startswith(prefix):
        rest = lower[len(prefix) :]
        return CUSTOM_HEADER_PREFIX + "-".join(part.capitalize() for part in rest.split("-"))
    return name


class RequestHeaders(dict[str, str]):
    """The headers forwarded to agent code, looked up case-insensitively.

    Only `Authorization` and `X-Amzn-Bedrock-AgentCore-Runtime-Custom-*` are ever forwarded; keys
    are stored in their documented spelling (`X-Amzn-Bedrock-AgentCore-Runtime-Custom-User-Tier`).
    """

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(canonical_header_name(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(canonical_header_name(key))

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(canonical_header_name(key), default)


@dataclass
class RequestContext:
    """What a handler's second parameter receives: the session, forwarded headers, the raw request.

    `request` is the Starlette `Request` (or `WebSocket`) being served, for anything else a handler
    needs (query parameters, client address, the full header list).
    """

    session_id: str | None = None
    request_headers: dict[str, str] | None = field(default=None)
    request: Any = field(default=None, repr=False)


_request_id: ContextVar[str | None] = ContextVar("agentcore_request_id", default=None)
_session_id: ContextVar[str | None] = ContextVar("agentcore_session_id", default=None)
_request_headers: ContextVar[dict[str, str] | None] = ContextVar("agentcore_request_headers", default=None)
_workload_access_token: ContextVar[str | None] = ContextVar("agentcore_workload_access_token", default=None)
_oauth2_callback_url: ContextVar[str | None] = ContextVar("agentcore_oauth2_callback_url", default=None)

_ALL_VARS: tuple[ContextVar[Any], ...] = (
    _request_id,
    _session_id,
    _request_headers,
    _workload_access_token,
    _oauth2_callback_url,
)


class BedrockAgentCoreContext:
    """Class-level accessors for the current request's identifiers, usable anywhere in handler code.

    Outside a request every getter returns None.
    """

    @classmethod
    def get_request_id(cls) -> str | None:
        """The request id: the `X-Amzn-Bedrock-AgentCore-Runtime-Request-Id` header or a new uuid4."""
        return _request_id.get()

    @classmethod
    def get_session_id(cls) -> str | None:
        """The `X-Amzn-Bedrock-AgentCore-Runtime-Session-Id` header, when the caller sent one."""
        return _session_id.get()

    @classmethod
    def get_request_headers(cls) -> dict[str, str] | None:
        """The forwarded headers (`Authorization` and the custom prefix); empty inside a request."""
        return _request_headers.get()

    @classmethod
    def set_request_context(cls, request_id: str, session_id: str | None = None) -> None:
        """Set the request and session ids for the current context (tests and custom servers)."""
        _request_id.set(request_id)
        _session_id.set(session_id)

    @classmethod
    def set_request_headers(cls, headers: dict[str, str]) -> None:
        """Replace the forwarded headers of the current context."""
        _request_headers.set(RequestHeaders((canonical_header_name(k), v) for k, v in headers.items()))

    @classmethod
    def get_workload_access_token(cls) -> str | None:
        """The workload access token the platform passed in the `WorkloadAccessToken` header."""
        return _workload_access_token.get()

    @classmethod
    def set_workload_access_token(cls, token: str) -> None:
        """Set the workload access token for the current context."""
        _workload_access_token.set(token)

    @classmethod
    def get_oauth2_callback_url(cls) -> str | None:
        """The OAuth2 callback URL the platform passed in the `OAuth2CallbackUrl` header."""
        return _oauth2_callback_url.get()

    @classmethod
    def set_oauth2_callback_url(cls, url: str) -> None:
        """Set the OAuth2 callback URL for the current context."""
        _oauth2_callback_url.set(url)


# Its own generator, not the `random` module's, so an agent's seeded `random` sequence stays the
# same whether or not requests arrive without ids; re-seeded in forked children as the module's is.
_ids = random.Random()  # noqa: S311 - ids to correlate by, not secrets
os.register_at_fork(after_in_child=_ids.seed)
_random_bits = _ids.getrandbits


def new_request_id() -> str:
    """A random version-4 UUID string for a request that came without an id.

    Request ids are correlation keys, not secrets, so they come from a fast PRNG rather than
    `uuid.uuid4()`, whose `os.urandom` call costs tens of microseconds on some virtual machines.
    """
    bits = (_random_bits(128) & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _header_text(value: bytes) -> str:
    # A session id sent as UTF-8 ("séance") is that text, not its bytes read as latin-1; bytes
    # that are not UTF-8 are latin-1, which is what HTTP/1.1 clients like http.client send.
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def enter_request(raw_headers: Iterable[tuple[bytes, bytes]], request: Any) -> RequestContext:
    """Read the contract's headers from an ASGI header list, bind them to this context, describe them.

    Runs on every invocation, so it is one pass over the raw header list with byte comparisons.
    """
    session_id: str | None = None
    request_id: str | None = None
    forwarded = RequestHeaders()
    for name, value in raw_headers:
        if name == _SESSION_HEADER:
            session_id = _header_text(value)
        elif name == _REQUEST_ID_HEADER:
            request_id = value.decode("latin-1")
        elif name == _AUTHORIZATION:
            dict.__setitem__(forwarded, "Authorization", value.decode("latin-1"))
        elif name.startswith(_CUSTOM_PREFIX):
            key = canonical_header_name(name.decode("latin-1"))
            dict.__setitem__(forwarded, key, value.decode("latin-1"))
        elif name == _ACCESS_TOKEN_HEADER:
            _workload_access_token.set(value.decode("latin-1"))
        elif name == _OAUTH2_CALLBACK_HEADER:
            _oauth2_callback_url.set(value.decode("latin-1"))
    _request_id.set(request_id or new_request_id())
    _session_id.set(session_id)
    _request_headers.set(forwarded)
    return RequestContext(session_id=session_id, request_headers=forwarded, request=request)


def _snapshot() -> tuple[Any, ...] | None:
    if _request_id.get() is None:
        return None
    return tuple(var.get() for var in _ALL_VARS)


def _run_with(snapshot: tuple[Any, ...], fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    tokens = [var.set(value) for var, value in zip(_ALL_VARS, snapshot, strict=True)]
    try:
        return fn(*args, **kwargs)
    finally:
        for var, token in zip(reversed(_ALL_VARS), reversed(tokens), strict=True):
            var.reset(token)


_installed = False
_install_lock = threading.Lock()


def propagate_to_threads() -> None:
    """Make threads and executor jobs started inside a request see that request's context.

    Python does not copy context variables into new threads, so code that hands work to a
    `threading.Thread` or a `ThreadPoolExecutor` would lose the session id. This wraps
    `Thread.start` and `ThreadPoolExecutor.submit` once per process; outside a request they behave
    exactly as before. Idempotent; called when the first `BedrockAgentCoreApp` is created.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True

    original_start = threading.Thread.start
    original_submit = concurrent.futures.ThreadPoolExecutor.submit

    @functools.wraps(original_start)
    def start(self: threading.Thread) -> None:
        snapshot = _snapshot()
        if snapshot is not None:
            run = self.run
            self.run = functools.partial(_run_with, snapshot, run)  # type: ignore[method-assign]
        original_start(self)

    def submit(
        self: concurrent.futures.ThreadPoolExecutor, fn: Callable[..., _T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[_T]:
        snapshot = _snapshot()
        if snapshot is None:
            return original_submit(self, fn, *args, **kwargs)
        return original_submit(self, _run_with, snapshot, fn, *args, **kwargs)

    threading.Thread.start = start  # type: ignore[method-assign]
    concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[assignment,method-assign]


__all__ = [
    "BedrockAgentCoreContext",
    "RequestContext",
    "RequestHeaders",
    "canonical_header_name",
    "enter_request",
    "new_request_id",
    "propagate_to_threads",
]
