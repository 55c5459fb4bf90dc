"""IAM-style policies: who may do which action on which resource.

A policy is `{"Version": ..., "Statement": [{"Effect": "Allow"|"Deny", "Action": ..., "Resource":
..., "Principal": ...}]}` with `Action` and `Resource` a string or a list, `*` and `?` wildcards
(actions compared without case, resources with). Identity policies belong to access keys;
resource policies to runtimes, and name the principals they admit. As in IAM, an explicit Deny
anywhere wins, then any Allow that matches admits, and everything else is denied.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_POLICY_BYTES = 20 * 1024
_KNOWN = {"Sid", "Effect", "Action", "Resource", "Principal"}


class PolicyError(ValueError):
    """A policy document that cannot be used; `field` names where it is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "no statement allows it"


@dataclass(frozen=True)
class Statement:
    allow: bool
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    principals: tuple[str, ...] | None  # resource policies only; "*" admits anyone

    def applies(self, action: str, resource: str, principal: str | None) -> bool:
        if not any(_match(pattern.lower(), action.lower()) for pattern in self.actions):
            return False
        if not any(_match(pattern, resource) for pattern in self.resources):
            return False
        if self.principals is None:
            return True
        return principal is not None and any(_match(p, principal) for p in self.principals)


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]

    def verdict(self, action: str, resource: str, principal: str | None = None) -> Decision | None:
        """EXPLICIT_DENY, ALLOW, or None when no statement speaks to this request."""
        matching = [s for s in self.statements if s.applies(action, resource, principal)]
        if any(not s.allow for s in matching):
            return Decision.EXPLICIT_DENY
        return Decision.ALLOW if matching else None


def parse_policy(document: Any, resource_policy: bool = False) -> Policy:
    """A policy from its JSON text or parsed document; `PolicyError` names what is wrong."""
    if isinstance(document, (str, bytes)):
        if len(document) > MAX_POLICY_BYTES:
            raise PolicyError("policy", f"a policy is at most {MAX_POLICY_BYTES} bytes")
        try:
            document = json.loads(document)
        except ValueError as error:
            raise PolicyError("policy", f"the policy is not JSON: {error}") from None
    if not isinstance(document, dict) or "Statement" not in document:
        raise PolicyError("policy", "a policy is a JSON object with a Statement list")
    statements = document["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyError("Statement", "Statement must be a statement or a non-empty list of them")
    return Policy(tuple(_statement(s, f"Statement[{i}]", resource_policy) for i, s in enumerate(statements)))


def _statement(raw: Any, where: str, resource_policy: bool) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyError(where, f"{where} must be an object")
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise PolicyError(
            f"{where}.{unknown[0]}", f"{where}.{unknown[0]} is not supported (use Effect, Action, Resource"
            + (", Principal)" if resource_policy else ")")
        )  # fmt: skip
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"{where}.Effect", f"{where}.Effect must be Allow or Deny")
    actions = _patterns(raw.get("Action"), f"{where}.Action")
    for action in actions:
        if action != "*" and not re.fullmatch(r"[a-zA-Z0-9-]+:[a-zA-Z0-9*?]+", action):
            raise PolicyError(f"{where}.Action", f"{where}.Action {action!r} is not service:Action")
    resources = _patterns(raw.get("Resource", "*"), f"{where}.Resource")
    principals: tuple[str, ...] | None = None
    if resource_policy:
        principals = _principals(raw.get("Principal"), f"{where}.Principal")
    elif "Principal" in raw:
        raise PolicyError(f"{where}.Principal", "an access key's policy has no Principal: it is the key's")
    return Statement(effect == "Allow", actions, resources, principals)


def _patterns(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
        raise PolicyError(where, f"{where} must be a string or a non-empty list of strings")
    return tuple(items)


def _principals(value: Any, where: str) -> tuple[str, ...]:
    if value == "*":
        return ("*",)
    if isinstance(value, dict) and set(value) == {"AWS"}:
        return _patterns(value["AWS"], f"{where}.AWS")
    raise PolicyError(where, f'{where} must be "*" or {{"AWS": [principal ARNs]}}')


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    # IAM wildcards only: `*` any run of characters, `?` one; everything else is literal.
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


def _match(pattern: str, value: str) -> bool:
    if pattern == "*":
        return True
    return _compiled(pattern).fullmatch(value) is not None


def decide(
    action: str,
    resource: str,
    principal: str,
    identity: Policy | None,
    resource_policies: Sequence[Policy] = (),
) -> Decision:
    """The decision for `principal` doing `action` on `resource`: explicit Deny anywhere wins."""
    verdicts = [identity.verdict(action, resource) if identity else None]
    verdicts += [policy.verdict(action, resource, principal) for policy in resource_policies]
    if Decision.EXPLICIT_DENY in verdicts:
        return Decision.EXPLICIT_DENY
    return Decision.ALLOW if Decision.ALLOW in verdicts else Decision.IMPLICIT_DENY


__all__ = ["Decision", "Policy", "PolicyError", "Statement", "decide", "parse_policy"]
