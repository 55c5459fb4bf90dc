"""Access-key routes under `/_agentcore/access-keys`: the admin creates, lists and revokes the keys of
other principals, over the same authenticated HTTP as everything else (so any replica serves them).

The operation table marks these admin-only and `access.py` refuses every other caller before they
run; each handler checks again, because a mistake here hands out credentials. A new key's secret
is in the create response and nowhere else: listings never carry it, and nothing here logs it.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from open_agentcore.auth.credentials import ADMIN_PRINCIPAL, new_access_key_id, new_secret_access_key
from open_agentcore.auth.policies import MAX_POLICY_BYTES, PolicyError, parse_policy
from open_agentcore.store import AccessKeyRecord, Store

from .access import AccessDirectory
from .authentication import caller_of
from .errors import AccessDenied, ValidationError
from .requests import json_body
from .shapes import timestamp

# IAM's user-name alphabet; the principal appears in ARNs as arn:aws:iam::<account>:user/<name>.
_PRINCIPAL = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")
_CREATE_FIELDS = {"principal", "policy"}
_NO_STORE = {"cache-control": "no-store"}


def _admin_only(request: Request) -> tuple[Store, AccessDirectory]:
    if not caller_of(request.scope).admin:
        raise AccessDenied("only the server's admin key manages access keys")
    store: Store = request.app.state.store
    directory: AccessDirectory = request.app.state.access
    return store, directory


async def create_access_key(request: Request) -> Response:
    """`{"principal": NAME, "policy": {...} | "<json>"}` → the key, with its secret (shown this once)."""
    store, directory = _admin_only(request)
    body = await json_body(request)
    if unknown := sorted(set(body) - _CREATE_FIELDS):
        message = f"unknown field {unknown[0][:40]!r}: expected principal and policy"
        raise ValidationError(message, field=unknown[0][:40])
    principal = _principal(body.get("principal"))
    policy = _policy(body.get("policy"))
    access_key_id, secret = new_access_key_id(), new_secret_access_key()
    record = await asyncio.to_thread(store.create_access_key, access_key_id, secret, principal, policy)
    directory.forget_key(access_key_id)  # in case a request with this id was refused and cached
    # no-store: a proxy or client cache must not keep the one copy of the secret.
    return JSONResponse({**_summary(directory, record), "secretAccessKey": secret}, headers=_NO_STORE)


async def list_access_keys(request: Request) -> Response:
    """Active keys (`?state=all` adds revoked ones), by id; never a secret."""
    store, directory = _admin_only(request)
    which = request.query_params.get("state", "active")
    if which not in ("active", "all"):
        raise ValidationError(f"state must be active or all, not {which[:40]!r}", field="state")
    records = await asyncio.to_thread(store.list_access_keys, which == "all")
    return JSONResponse({"accessKeys": [_summary(directory, record) for record in records]})


async def revoke_access_key(request: Request) -> Response:
    """Revoke a key: refused from the next request on this server (within seconds on others)."""
    store, directory = _admin_only(request)
    access_key_id = request.path_params["access_key_id"]
    if access_key_id == directory.admin.access_key_id:
        raise ValidationError(
            "the admin key is not a stored key and cannot be revoked: replace it where the server "
            "reads it (AGENTCORE_ADMIN_ACCESS_KEY_ID, or admin-credentials.json in its data dir)",
            field="accessKeyId",
        )
    record = await asyncio.to_thread(store.revoke_access_key, access_key_id)
    directory.forget_key(access_key_id)
    return JSONResponse(_summary(directory, record))


def _summary(directory: AccessDirectory, record: AccessKeyRecord) -> dict[str, Any]:
    return {
        "accessKeyId": record.access_key_id,
        "principal": record.principal,
        "principalArn": directory.principal_arn(record.principal),
        "status": "ACTIVE" if record.active else "REVOKED",
        "createdAt": timestamp(record.created_at),
        "revokedAt": timestamp(record.revoked_at) if record.revoked_at else None,
        "policy": record.policy,
    }


def _principal(value: Any) -> str:
    if not isinstance(value, str) or not _PRINCIPAL.fullmatch(value):
        raise ValidationError("principal is 1-64 letters, digits or +=,.@_-", field="principal")
    if value.lower() == ADMIN_PRINCIPAL:
        # The admin key's own principal: a stored key by that name would share the admin's sessions.
        raise ValidationError(f"principal {value!r} is reserved for the admin key", field="principal")
    return value


def _policy(value: Any) -> dict[str, Any] | None:
    """The policy document to store (None: the key may do nothing), once it parses."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise ValidationError(f"a policy is at most {MAX_POLICY_BYTES} bytes", field="policy")
    try:
        parse_policy(text)
    except PolicyError as error:
        raise ValidationError(f"policy: {error}", field="policy") from None
    document: dict[str, Any] = json.loads(text)
    return document


__all__ = ["create_access_key", "list_access_keys", "revoke_access_key"]
