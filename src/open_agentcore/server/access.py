"""Access control after authentication: which action each route is, and whether the caller may.

Every route names the action it needs (`OPERATIONS`). Access keys other than the admin key carry
an identity policy; a runtime may carry a resource policy; `decide` weighs both as IAM does.
Keys and policies are read from the store and kept for `CACHE_SECONDS`, so a key revoked with
`agentcore server keys revoke` stops working within that time (at once for this server's own
resource-policy writes, which drop their cache entry).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from open_agentcore.auth import Credential
from open_agentcore.auth.policies import Decision, Policy, PolicyError, decide, parse_policy
from open_agentcore.runtimes import runtime_id_from
from open_agentcore.store import AccessKeyNotFound, NotFoundError, ResourcePolicyNotFound, Store

from .errors import AccessDenied

CACHE_SECONDS = 5.0
SERVICE = "bedrock-agentcore"
FOR_USER = f"{SERVICE}:InvokeAgentRuntimeForUser"
USER_HEADER = b"x-amzn-bedrock-agentcore-runtime-user-id"


@dataclass(frozen=True)
class Operation:
    action: str
    resource: str
    runtime_id: str | None


# (protocol or method, path pattern, action, what the resource is: runtime, endpoint, arn, any)
_ROUTES: list[tuple[str, re.Pattern[str], str, str]] = [
    (method, re.compile(pattern), f"{SERVICE}:{action}", kind)
    for method, pattern, action, kind in [
        ("POST", r"^/runtimes/(?P<ref>.+)/invocations$", "InvokeAgentRuntime", "runtime"),
        ("GET", r"^/runtimes/(?P<ref>.+)/invocations/\.well-known/agent-card\.json$", "GetAgentCard",
         "runtime"),
        ("POST", r"^/runtimes/(?P<ref>.+)/stopruntimesession$", "StopRuntimeSession", "runtime"),
        ("websocket", r"^/runtimes/(?P<ref>.+)/ws$", "InvokeAgentRuntimeWithWebSocketStream", "runtime"),
        ("PUT", r"^/runtimes/$", "CreateAgentRuntime", "any"),
        ("POST", r"^/runtimes/$", "ListAgentRuntimes", "any"),
        ("GET", r"^/runtimes/(?P<ref>[^/]+)/$", "GetAgentRuntime", "runtime"),
        ("PUT", r"^/runtimes/(?P<ref>[^/]+)/$", "UpdateAgentRuntime", "runtime"),
        ("DELETE", r"^/runtimes/(?P<ref>[^/]+)/$", "DeleteAgentRuntime", "runtime"),
        ("POST", r"^/runtimes/(?P<ref>[^/]+)/versions/$", "ListAgentRuntimeVersions", "runtime"),
        ("PUT", r"^/runtimes/(?P<ref>[^/]+)/runtime-endpoints/$", "CreateAgentRuntimeEndpoint", "runtime"),
        ("POST", r"^/runtimes/(?P<ref>[^/]+)/runtime-endpoints/$", "ListAgentRuntimeEndpoints", "runtime"),
        ("GET", r"^/runtimes/(?P<ref>[^/]+)/runtime-endpoints/(?P<name>[^/]+)/$", "GetAgentRuntimeEndpoint",
         "endpoint"),
        ("PUT", r"^/runtimes/(?P<ref>[^/]+)/runtime-endpoints/(?P<name>[^/]+)/$",
         "UpdateAgentRuntimeEndpoint", "endpoint"),
        ("DELETE", r"^/runtimes/(?P<ref>[^/]+)/runtime-endpoints/(?P<name>[^/]+)/$",
         "DeleteAgentRuntimeEndpoint", "endpoint"),
        ("PUT", r"^/resourcepolicy/(?P<ref>.+)$", "PutResourcePolicy", "runtime"),
        ("GET", r"^/resourcepolicy/(?P<ref>.+)$", "GetResourcePolicy", "runtime"),
        ("DELETE", r"^/resourcepolicy/(?P<ref>.+)$", "DeleteResourcePolicy", "runtime"),
        ("PUT", r"^/_agentcore/artifacts$", "UploadArtifact", "any"),
        ("GET", r"^/_agentcore/runtimes/(?P<ref>[^/]+)/versions/[^/]+/build-log$", "GetBuildLog", "runtime"),
        ("GET", r"^/_agentcore/runtimes/(?P<ref>[^/]+)/sessions$", "ListRuntimeSessions", "runtime"),
        ("GET", r"^/_agentcore/runtimes/(?P<ref>[^/]+)/sessions/[^/]+/logs$", "GetRuntimeSessionLogs",
         "runtime"),
    ]
]  # fmt: skip
ACTIONS = tuple(sorted({action for _, _, action, _ in _ROUTES} | {FOR_USER}))


def operation_of(scope: Scope, region: str, account: str) -> Operation | None:
    """The action and resource of a request, or None for a path no operation is served at."""
    method = "websocket" if scope["type"] == "websocket" else scope.get("method", "GET")
    path = scope["path"]
    for route_method, pattern, action, kind in _ROUTES:
        if route_method != method or (match := pattern.match(path)) is None:
            continue
        base = f"arn:aws:{SERVICE}:{region}:{account}:runtime"
        if kind == "any":
            return Operation(action, f"{base}/*", None)
        runtime_id = runtime_id_from(unquote(match.group("ref")))
        resource = f"{base}/{runtime_id}"
        if kind == "endpoint":
            resource += f"/runtime-endpoint/{match.group('name')}"
        return Operation(action, resource, runtime_id)
    return None


class AccessDirectory:
    """Access keys, their policies and runtimes' resource policies, read through a short cache."""

    def __init__(self, admin: Credential, account: str) -> None:
        self.admin = admin
        self.account = account
        self.store: Store | None = None  # set when the server's lifespan opens it
        self._keys: dict[str, tuple[float, Credential | None, Policy | None]] = {}
        self._resource_policies: dict[str, tuple[float, Policy | None]] = {}

    def principal_arn(self, principal: str) -> str:
        return f"arn:aws:iam::{self.account}:root" if principal == self.admin.principal else (
            f"arn:aws:iam::{self.account}:user/{principal}"
        )  # fmt: skip

    def lookup(self, access_key_id: str) -> Credential | None:
        """The credential of an active key (the SigV4 verifier's key lookup)."""
        if access_key_id == self.admin.access_key_id:
            return self.admin
        return self._key(access_key_id)[0]

    def _key(self, access_key_id: str) -> tuple[Credential | None, Policy | None]:
        now = time.monotonic()
        cached = self._keys.get(access_key_id)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        credential, policy = None, None
        if self.store is not None and len(access_key_id) <= 128:
            try:
                record = self.store.get_access_key(access_key_id)
            except AccessKeyNotFound:
                record = None
            if record is not None:
                credential = Credential(record.access_key_id, record.secret, record.principal)
                policy = _stored_policy(record.policy)
        if len(self._keys) > 10_000:
            self._keys.clear()  # bounded: unknown key ids are cached too, and anyone can send them
        self._keys[access_key_id] = (now + CACHE_SECONDS, credential, policy)
        return credential, policy

    def resource_policy(self, runtime_id: str) -> Policy | None:
        now = time.monotonic()
        cached = self._resource_policies.get(runtime_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        policy = None
        if self.store is not None:
            try:
                policy = _stored_policy(self.store.get_resource_policy(runtime_id).policy, resource=True)
            except (ResourcePolicyNotFound, NotFoundError):
                policy = None
        if len(self._resource_policies) > 10_000:
            self._resource_policies.clear()
        self._resource_policies[runtime_id] = (now + CACHE_SECONDS, policy)
        return policy

    def forget_resource_policy(self, runtime_id: str) -> None:
        self._resource_policies.pop(runtime_id, None)

    def check(self, access_key_id: str, principal: str, operation: Operation, for_user: bool) -> None:
        """Raise `AccessDenied` unless the key may perform the operation (and act for a user)."""
        if principal == self.admin.principal and access_key_id == self.admin.access_key_id:
            return
        _, identity = self._key(access_key_id)
        arn = self.principal_arn(principal)
        resource_policies = []
        if operation.runtime_id is not None and (found := self.resource_policy(operation.runtime_id)):
            resource_policies.append(found)
        actions = [operation.action, *([FOR_USER] if for_user else [])]
        for action in actions:
            decision = decide(action, operation.resource, arn, identity, resource_policies)
            if decision is not Decision.ALLOW:
                why = "an explicit deny in a policy" if decision is Decision.EXPLICIT_DENY else (
                    "no policy allows it"
                )  # fmt: skip
                raise AccessDenied(
                    f"User: {arn} is not authorized to perform: {action} on resource: "
                    f"{operation.resource} because {why}"
                )


def _stored_policy(document: dict[str, Any] | None, resource: bool = False) -> Policy | None:
    if document is None:
        return None
    try:
        return parse_policy(document, resource_policy=resource)
    except PolicyError:
        # Stored policies were checked when written; one that no longer parses admits nobody.
        return Policy(())


class PolicyEnforcement:
    """ASGI middleware inside authentication: refuse what the caller's policies do not allow."""

    def __init__(self, app: ASGIApp, directory: AccessDirectory, region: str) -> None:
        self.app = app
        self.directory = directory
        self.region = region

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state") or {}
        key_id = state.get("access_key_id")
        admin = self.directory.admin
        if key_id is not None and key_id != admin.access_key_id and scope["type"] in ("http", "websocket"):
            operation = operation_of(scope, self.region, self.directory.account)
            if operation is not None:
                for_user = operation.action.endswith(":InvokeAgentRuntime") and any(
                    name == USER_HEADER for name, _ in scope["headers"]
                )
                try:
                    self.directory.check(key_id, state["principal"], operation, for_user)
                except AccessDenied as denied:
                    await _deny(scope, send, denied)
                    return
        await self.app(scope, receive, send)


async def _deny(scope: Scope, send: Send, denied: AccessDenied) -> None:
    response = denied.response()
    prefix = "http.response" if scope["type"] == "http" else "websocket.http.response"
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": f"{prefix}.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": f"{prefix}.body", "body": response.body})


__all__ = ["ACTIONS", "AccessDirectory", "Operation", "PolicyEnforcement", "operation_of"]
