"""Every operation the server answers, declared once, and the one place a request path is parsed.

An `Operation` names its method, path template, IAM action, the kind of resource it acts on, how
callers may authenticate, and its handler. The gateway (authentication, rate limit, policy check,
dispatch) and the Starlette routes all read the `OperationMatch` that `OperationTable.classify`
puts in the ASGI scope, so the resource a policy is decided on is the very one the handler acts
on: each path segment is percent-decoded exactly once, here, and a template parameter is always
one whole segment (an ARN's `/` arrives as `%2F`, as botocore sends it).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, request_response, websocket_session
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from open_agentcore.runtimes.validation import NAME, RUNTIME_ID

from .errors import NotFound, ServiceError, UnknownOperation, ValidationError

SERVICE = "bedrock-agentcore"
WEBSOCKET = "WEBSOCKET"  # the "method" of a WebSocket handshake
SCOPE_KEY = "agentcore.match"
MAX_SESSION_ID = 256

_RUNTIME_ARN = re.compile(r"^arn:aws:bedrock-agentcore:([a-z0-9-]{1,64}):([0-9]{12}):runtime/([^/]+)\Z")
_VERSION = re.compile(r"^[1-9][0-9]{0,4}\Z")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9]{1,128}")
_ASSET = re.compile(r"[a-z0-9-]{1,64}\.(js|css|svg|png)")
_MAX_KNOWN_PATHS = 4096
REQUEST_ID = re.compile(r"[A-Za-z0-9._~:-]{1,128}")  # an invocation's, as callers may choose it


class Resource(enum.Enum):
    """What the IAM resource of an operation is."""

    NONE = "none"  # the runtime collection: `.../runtime/*`
    RUNTIME = "runtime"
    ENDPOINT = "endpoint"
    # Known only once the handler has read what the request names (a trace's runtime): the policy
    # middleware leaves the decision to the handler, which must make it (`AccessDirectory.check_on`).
    IN_HANDLER = "in-handler"


class Auth(enum.Enum):
    """How a caller of an operation may prove who they are."""

    PUBLIC = "public"  # nobody needs to (the health check)
    SIGV4 = "sigv4"  # a SigV4 signature in the headers
    RUNTIME = "runtime"  # SigV4 headers, or a bearer token when the runtime's JWT authorizer says so
    RUNTIME_PRESIGNED = "runtime-presigned"  # as RUNTIME, or a SigV4 presigned URL (WebSockets)
    ADMIN = "admin"  # SigV4 headers signed with the server's admin key; no policy admits anyone else
    SPANS = "spans"  # SigV4 headers, or a worker's span credential as a bearer token (checked in the handler)


Handler = Callable[[Request], Awaitable[Response]] | Callable[[WebSocket], Awaitable[None]]


@dataclass(frozen=True)
class Operation:
    """One operation: the request that selects it, what it needs, and who handles it."""

    name: str
    method: str
    template: str
    resource: Resource
    handler: Handler
    auth: Auth = Auth.SIGV4
    max_body: int | None = None  # None: the server's `max_payload`
    traced: bool = True  # False: no span (health checks, and the trace routes themselves)
    segments: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.template.split("/")))

    @property
    def action(self) -> str:
        """The IAM action a policy must allow, `bedrock-agentcore:<name>`."""
        return f"{SERVICE}:{self.name}"

    @property
    def presigned(self) -> bool:
        """Whether a SigV4 presigned URL authenticates it (only a WebSocket handshake: a browser
        cannot set headers there; anywhere else a URL that leaks would replay any body)."""
        return self.auth is Auth.RUNTIME_PRESIGNED

    @property
    def admin_only(self) -> bool:
        """Whether only the admin key may call it: no stored key, whatever its policy allows."""
        return self.auth is Auth.ADMIN

    @property
    def bearer(self) -> bool:
        """Whether a bearer token (or no credential at all) is passed on for the runtime to judge."""
        return self.auth in (Auth.RUNTIME, Auth.RUNTIME_PRESIGNED, Auth.SPANS)


@dataclass(frozen=True)
class OperationMatch:
    """A request classified: its operation, its decoded parameters and the IAM resource they name.

    `error` is set when the path names this operation but a parameter is malformed; the caller is
    authenticated first and then told what is wrong.
    """

    operation: Operation
    params: dict[str, str]
    resource: str
    runtime_id: str | None = None
    error: ServiceError | None = None


@dataclass(frozen=True)
class Unmatched:
    """No operation is served at this path (404), or not with this method (405)."""

    error: ServiceError


Classification = OperationMatch | Unmatched


def classification_of(scope: Scope) -> Classification:
    """What `OperationTable.classify` found for this request (set by the classifying middleware)."""
    found: Classification = scope[SCOPE_KEY]
    return found


class OperationTable:
    """The operations of one server, and the classification of requests against them."""

    def __init__(self, operations: Sequence[Operation], region: str, account: str) -> None:
        self.operations = tuple(operations)
        self.region = region
        self.account = account
        self._by_length: dict[int, list[Operation]] = {}
        for operation in self.operations:
            self._by_length.setdefault(len(operation.segments), []).append(operation)
        # Clients call the same few paths over and over (one per runtime ARN): a path that
        # classified cleanly is not parsed again. Bounded, since anyone can send any path.
        self._known: dict[tuple[str, bytes], OperationMatch] = {}

    def runtime_arn(self, runtime_id: str) -> str:
        return f"arn:aws:{SERVICE}:{self.region}:{self.account}:runtime/{runtime_id}"

    def classify(self, scope: Scope) -> Classification:
        """Match the request's raw path, segment by segment, against every template."""
        method = WEBSOCKET if scope["type"] == "websocket" else scope.get("method", "GET")
        raw = scope.get("raw_path") or scope["path"].encode()
        if (known := self._known.get((method, raw))) is not None:
            return known
        found = self._classify(method, raw)
        if isinstance(found, OperationMatch) and found.error is None:
            if len(self._known) >= _MAX_KNOWN_PATHS:
                self._known.clear()
            self._known[(method, raw)] = found
        return found

    def _classify(self, method: str, raw: bytes) -> Classification:
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        segments = raw_path.split("/")
        methods: list[str] = []
        for operation in self._by_length.get(len(segments), ()):
            if not _literals_match(operation.segments, segments):
                continue
            if operation.method != method:
                methods.append(operation.method)
                continue
            return self._bind(operation, segments)
        if methods:
            error = UnknownOperation(f"{method} is not served at {raw_path}; it answers {', '.join(methods)}")
            error.status = 405
            return Unmatched(error)
        return Unmatched(UnknownOperation(f"no operation is served at {raw_path}"))

    def _bind(self, operation: Operation, segments: list[str]) -> OperationMatch:
        params: dict[str, str] = {}
        try:
            for template, raw in zip(operation.segments, segments, strict=True):
                if template.startswith("{"):
                    name = template[1:-1]
                    params[_PARAMETERS[name][0]] = _PARAMETERS[name][1](self, _decode(raw, name))
        except ServiceError as error:
            return OperationMatch(operation, params, self.runtime_arn("*"), None, error)
        runtime_id = params.get("runtime_id")
        if operation.resource is Resource.NONE or runtime_id is None:
            resource = self.runtime_arn("*")
        elif operation.resource is Resource.ENDPOINT:
            resource = f"{self.runtime_arn(runtime_id)}/runtime-endpoint/{params['endpoint']}"
        else:
            resource = self.runtime_arn(runtime_id)
        return OperationMatch(operation, params, resource, runtime_id)

    def routes(self) -> list[BaseRoute]:
        """Starlette routes that dispatch on the classification, one per operation (the gateway
        dispatches HTTP requests itself; WebSocket handshakes take these routes)."""
        return [OperationRoute(operation) for operation in self.operations]

    @property
    def actions(self) -> tuple[str, ...]:
        """Every IAM action the table names, sorted."""
        return tuple(sorted({operation.action for operation in self.operations}))


def _literals_match(template: Sequence[str], segments: Sequence[str]) -> bool:
    pairs = zip(template, segments, strict=True)
    return all(part.startswith("{") or part == segment for part, segment in pairs)


def _decode(raw: str, name: str) -> str:
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"the {name} in the path is not percent-encoded UTF-8", field=name) from None
    if not text:
        raise ValidationError(f"the {name} in the path is empty", field=name)
    return text


def _runtime_reference(table: OperationTable, text: str) -> str:
    """A runtime ARN of this server's region and account, or a bare runtime id: the runtime id."""
    if (arn := _RUNTIME_ARN.match(text)) is not None:
        region, account, runtime_id = arn.groups()
        if (region, account) != (table.region, table.account):
            raise NotFound(
                f"no agent runtime {text}: this server serves region {table.region}, account {table.account}"
            )
        text = runtime_id
    elif text.startswith("arn:"):
        raise ValidationError(
            f"agentRuntimeArn {text!r} is not an agent runtime ARN "
            "(arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>)",
            field="agentRuntimeArn",
        )
    return _runtime_id(table, text)


def _runtime_id(table: OperationTable, text: str) -> str:
    if not RUNTIME_ID.match(text):
        raise ValidationError(
            f"{text[:120]!r} is not an agent runtime id (<name>-<10 letters or digits>)",
            field="agentRuntimeId",
        )
    return text


def _policy_resource(table: OperationTable, text: str) -> str:
    arn = _RUNTIME_ARN.match(text)
    if arn is None:
        raise ValidationError("resourceArn must be an agent runtime ARN", field="resourceArn")
    return _runtime_reference(table, text)


# Any resource the service can tag (botocore's TaggableResourcesArn); this server keeps runtimes.
_TAGGABLE_ARN = re.compile(
    r"^arn:[^:]*:bedrock-agentcore:[a-z0-9-]+:[0-9]{12}:[a-z-]+/[^/]+(/[a-z-]+/[^/]+)*$"
)


def _tagged_resource(table: OperationTable, text: str) -> str:
    if _RUNTIME_ARN.match(text):
        return _runtime_reference(table, text)
    if _TAGGABLE_ARN.match(text) and len(text) <= 1011:
        raise NotFound(f"no resource {text[:200]}: this server keeps tags of agent runtimes only")
    raise ValidationError("resourceArn must be the ARN of a bedrock-agentcore resource", field="resourceArn")


def _endpoint(table: OperationTable, text: str) -> str:
    if not NAME.match(text):
        raise ValidationError(f"{text[:120]!r} is not an endpoint name", field="endpointName")
    return text


def _version(table: OperationTable, text: str) -> str:
    if not _VERSION.match(text):
        raise ValidationError(f"{text[:20]!r} is not a version number like '1'", field="version")
    return text


def _session_id(table: OperationTable, text: str) -> str:
    if len(text) > MAX_SESSION_ID:
        raise ValidationError(f"a session id is 1 to {MAX_SESSION_ID} characters", field="runtimeSessionId")
    return text


def _request_id(table: OperationTable, text: str) -> str:
    if not REQUEST_ID.fullmatch(text):
        raise ValidationError("a request id is 1 to 128 letters, digits and . _ ~ : -", field="requestId")
    return text


def _access_key_id(table: OperationTable, text: str) -> str:
    if not _ACCESS_KEY_ID.fullmatch(text):
        message = f"{text[:40]!r} is not an access key id (letters and digits)"
        raise ValidationError(message, field="accessKeyId")
    return text


def _asset(table: OperationTable, text: str) -> str:
    if not _ASSET.fullmatch(text):
        raise NotFound(f"the console has no asset {text[:64]!r}")
    return text


def _trace_id(table: OperationTable, text: str) -> str:
    if not _TRACE_ID.fullmatch(text):
        raise ValidationError(f"{text[:40]!r} is not a trace id (32 lower-case hex digits)", field="traceId")
    return text


# Template parameter -> (the path_params key the handler reads, its parser).
_PARAMETERS: dict[str, tuple[str, Callable[[OperationTable, str], str]]] = {
    "runtime": ("runtime_id", _runtime_reference),
    "runtime_id": ("runtime_id", _runtime_id),
    "resource_arn": ("runtime_id", _policy_resource),
    "tagged_arn": ("runtime_id", _tagged_resource),
    "endpoint": ("endpoint", _endpoint),
    "version": ("version", _version),
    "session_id": ("session_id", _session_id),
    "request_id": ("request_id", _request_id),
    "access_key_id": ("access_key_id", _access_key_id),
    "asset": ("asset", _asset),
    "trace_id": ("trace_id", _trace_id),
}


class OperationRoute(BaseRoute):
    """A Starlette route for one operation: it matches when the classification chose it."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.path = operation.template
        handler: Any = operation.handler
        self.app = websocket_session(handler) if operation.method == WEBSOCKET else request_response(handler)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        found = scope.get(SCOPE_KEY)
        if isinstance(found, OperationMatch) and found.operation is self.operation and found.error is None:
            return Match.FULL, {"endpoint": self.operation.handler, "path_params": dict(found.params)}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NotImplementedError("operations are not reversed into URLs")


async def unmatched(scope: Scope, receive: Receive, send: Send) -> None:
    """The router's default: the classification's own error (404, 405, or a malformed parameter).

    A WebSocket handshake is refused with the same response where the server can send one.
    """
    found = scope.get(SCOPE_KEY)
    error = found.error if isinstance(found, (OperationMatch, Unmatched)) else None
    error = error or UnknownOperation(f"no operation is served at {scope.get('path', '')}")
    if scope["type"] != "websocket":
        raise error
    websocket = WebSocket(scope, receive, send)
    if "websocket.http.response" in scope.get("extensions", {}):
        await websocket.send_denial_response(error.response())
    else:
        await websocket.close(code=1008, reason=error.message[:120])


def operation_names(operations: Iterable[Operation]) -> list[str]:
    return [operation.name for operation in operations]


__all__ = [
    "REQUEST_ID",
    "SCOPE_KEY",
    "SERVICE",
    "WEBSOCKET",
    "Auth",
    "Classification",
    "Operation",
    "OperationMatch",
    "OperationRoute",
    "OperationTable",
    "Resource",
    "Unmatched",
    "classification_of",
    "unmatched",
]
