"""Access control after authentication: whether the caller's policies allow the operation.

Each operation names its action and resource in the operation table (`operations.py`); access
keys other than the admin key carry an identity policy; a runtime may carry a resource policy;
`decide` weighs both as IAM does. Operations the table marks admin-only (access-key management)
are decided before any policy: the admin key alone may call them, so no stored key can grant
itself or others more rights, whatever its policy says. Keys and policies are read from the store
on a worker thread (one read per key at a time, however many requests wait for it) and kept for
`CACHE_SECONDS`, so a key revoked on another replica (or in the store) stops working within that
time; this server's own revocations and resource-policy writes drop their cache entry, and take
effect at once (see `store.ReadCache`).
"""

from __future__ import annotations

from typing import Any

from starlette.types import Scope, Send

from open_agentcore.auth import Caller, Credential, Scheme
from open_agentcore.auth.policies import Decision, Policy, PolicyError, decide, parse_policy
from open_agentcore.store import AccessKeyNotFound, NotFoundError, ReadCache, ResourcePolicyNotFound, Store

from .errors import AccessDenied
from .operations import SERVICE, OperationMatch, Resource

CACHE_SECONDS = 5.0
FOR_USER = f"{SERVICE}:InvokeAgentRuntimeForUser"
USER_HEADER = b"x-amzn-bedrock-agentcore-runtime-user-id"
_MAX_CACHED = 10_000
_MAX_KEY_ID = 128


class AccessDirectory:
    """Access keys, their policies and runtimes' resource policies, read through a short cache.

    Every store read runs on a worker thread: authentication never blocks the event loop.
    """

    def __init__(self, admin: Credential, account: str) -> None:
        self.admin = admin
        self.account = account
        self.store: Store | None = None  # set when the server's lifespan opens it
        self._keys: ReadCache[str, tuple[Credential | None, Policy | None]] = ReadCache(
            CACHE_SECONDS, _MAX_CACHED
        )
        self._resource_policies: ReadCache[str, Policy | None] = ReadCache(CACHE_SECONDS, _MAX_CACHED)

    def principal_arn(self, principal: str | None) -> str:
        if principal == self.admin.principal:
            return f"arn:aws:iam::{self.account}:root"
        return f"arn:aws:iam::{self.account}:user/{principal}"

    async def credential(self, access_key_id: str) -> Credential | None:
        """The credential of an active key, or None for a key the server does not know."""
        if access_key_id == self.admin.access_key_id:
            return self.admin
        return (await self._key(access_key_id))[0]

    def is_admin(self, credential: Credential) -> bool:
        return credential.access_key_id == self.admin.access_key_id

    async def _key(self, access_key_id: str) -> tuple[Credential | None, Policy | None]:
        store = self.store
        if store is None or len(access_key_id) > _MAX_KEY_ID:
            return None, None
        # Unknown key ids are cached too (as None): anyone can send them, and the cache is bounded.
        return await self._keys.get(access_key_id, lambda: self._read_key(store, access_key_id))

    @staticmethod
    def _read_key(store: Store, access_key_id: str) -> tuple[Credential | None, Policy | None]:
        try:
            record = store.get_access_key(access_key_id)
        except AccessKeyNotFound:
            return None, None
        return Credential(record.access_key_id, record.secret, record.principal), _stored_policy(
            record.policy
        )

    async def resource_policy(self, runtime_id: str) -> Policy | None:
        store = self.store
        if store is None:
            return None
        read = lambda: self._read_resource_policy(store, runtime_id)  # noqa: E731 - read on a thread
        return await self._resource_policies.get(runtime_id, read)

    @staticmethod
    def _read_resource_policy(store: Store, runtime_id: str) -> Policy | None:
        try:
            return _stored_policy(store.get_resource_policy(runtime_id).policy, resource=True)
        except (ResourcePolicyNotFound, NotFoundError):
            return None

    def forget_resource_policy(self, runtime_id: str) -> None:
        self._resource_policies.forget(lambda key: key == runtime_id)

    def forget_key(self, access_key_id: str) -> None:
        """Drop a key from the cache: this server's next request with it reads the store again."""
        self._keys.forget(lambda key: key == access_key_id)

    async def check(self, caller: Caller, match: OperationMatch, for_user: bool) -> None:
        """Raise `AccessDenied` unless the caller may perform the matched operation (and act for a user).

        The resource is the one the classification parsed from the path: the same runtime id
        the handler will act on. An admin-only operation admits the admin key and nobody else.
        """
        if match.operation.admin_only:
            if not caller.admin:
                raise AccessDenied(
                    f"{caller.describe()} is not authorized to perform: {match.operation.action}: "
                    "only the server's admin key manages access keys"
                )
            return
        if match.operation.resource is Resource.IN_HANDLER:
            return  # the handler decides with `check_on` once it knows the resource
        actions = [match.operation.action, *([FOR_USER] if for_user else [])]
        scoped = match.operation.resource is not Resource.NONE
        await self._require(caller, actions, match.resource, match.runtime_id if scoped else None)

    async def check_on(self, caller: Caller, action: str, resource: str, runtime_id: str | None) -> None:
        """Raise `AccessDenied` unless the caller may perform `action` on `resource` (a runtime's ARN,
        or the runtime collection's with `runtime_id` None): for `Resource.IN_HANDLER` operations."""
        await self._require(caller, [action], resource, runtime_id)

    async def _require(
        self, caller: Caller, actions: list[str], resource: str, runtime_id: str | None
    ) -> None:
        if caller.admin or caller.access_key_id is None:
            return
        arn = self.principal_arn(caller.principal)
        for action in actions:
            decision = await self._decide(caller, action, resource, runtime_id)
            if decision is not Decision.ALLOW:
                why = "an explicit deny in a policy" if decision is Decision.EXPLICIT_DENY else (
                    "no policy allows it"
                )  # fmt: skip
                raise AccessDenied(
                    f"User: {arn} is not authorized to perform: {action} on resource: "
                    f"{resource} because {why}"
                )

    async def allows(self, caller: Caller, action: str, runtime_arn: str, runtime_id: str) -> bool:
        """Whether the caller's policies allow `action` on the runtime (for filtering what a list shows)."""
        if caller.admin or caller.access_key_id is None:
            return True
        return await self._decide(caller, action, runtime_arn, runtime_id) is Decision.ALLOW

    async def _decide(self, caller: Caller, action: str, resource: str, runtime_id: str | None) -> Decision:
        _, identity = await self._key(str(caller.access_key_id))
        resource_policies = []
        if runtime_id is not None and (found := await self.resource_policy(runtime_id)):
            resource_policies.append(found)
        return decide(action, resource, self.principal_arn(caller.principal), identity, resource_policies)


def _stored_policy(document: dict[str, Any] | None, resource: bool = False) -> Policy | None:
    if document is None:
        return None
    try:
        return parse_policy(document, resource_policy=resource)
    except PolicyError:
        # Stored policies were checked when written; one that no longer parses admits nobody.
        return Policy(())


async def enforce_policy(
    directory: AccessDirectory, scope: Scope, send: Send, caller: Caller, match: OperationMatch
) -> bool:
    """Whether the caller's policies allow the classified operation; False once refused (sent).

    Bearer-token callers are judged by the runtime's JWT authorizer instead, in the route.
    Admin-only operations are decided for every caller, before a malformed path parameter is
    reported: others learn nothing from them but the refusal.
    """
    operation = match.operation
    if not (operation.admin_only or (match.error is None and caller.scheme is Scheme.SIGV4)):
        return True
    for_user = (
        not caller.admin
        and operation.name == "InvokeAgentRuntime"
        and any(name == USER_HEADER for name, _ in scope["headers"])
    )  # the admin may do anything: no need to look
    try:
        await directory.check(caller, match, for_user)
    except AccessDenied as denied:
        await _deny(scope, send, denied)
        return False
    return True


async def _deny(scope: Scope, send: Send, denied: AccessDenied) -> None:
    response = denied.response()
    prefix = "http.response" if scope["type"] == "http" else "websocket.http.response"
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": f"{prefix}.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": f"{prefix}.body", "body": response.body})


__all__ = ["FOR_USER", "AccessDirectory", "enforce_policy"]
