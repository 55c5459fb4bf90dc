"""Who may call a runtime: SigV4 callers, or bearer-token callers when its version has a JWT authorizer.

The authentication middleware verified any SigV4 signature already; for data-plane paths it let
bearer tokens and anonymous calls through to here, because only the runtime's configuration says
which kind it takes. Every data-plane route calls `authorize` before it does anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from open_agentcore.auth import JwtAuthorizer, MissingBearerToken, bearer_token
from open_agentcore.runtimes import Route, RuntimeNotReady, RuntimeService, jwt_authorizer_of
from open_agentcore.store import NotFoundError

from .errors import AccessDenied, ServiceError, Unauthorized


class MissingAuthenticationToken(ServiceError):
    code = "MissingAuthenticationTokenException"
    status = 403


async def admitted_route(
    service: RuntimeService, state: Mapping[str, Any], headers: Mapping[str, str], reference: str,
    qualifier: str | None,
) -> tuple[Route, str | None]:  # fmt: skip
    """The route of a data-plane call and the token's user id, once the caller is admitted.

    A caller who has not proven who they are learns nothing about runtimes: an unknown or
    unready runtime is the same refusal as a known one.
    """
    try:
        route = await service.route(reference, qualifier)
    except (NotFoundError, RuntimeNotReady):
        if state.get("scheme") == "sigv4":
            raise
        if state.get("scheme") == "bearer":
            raise AccessDenied("the bearer token is not accepted for this agent runtime") from None
        raise MissingAuthenticationToken("Missing Authentication Token") from None
    return route, await authorize(state, headers, route, service.authorizer)


async def authorize(
    state: Mapping[str, Any], headers: Mapping[str, str], route: Route, authorizer: JwtAuthorizer
) -> str | None:
    """Admit the call or raise the AWS error; returns the user id a verified token names (`sub`)."""
    runtime_id = route.runtime.id
    jwt = jwt_authorizer_of(route.config)
    scheme = state.get("scheme")
    if jwt is None:
        if scheme == "sigv4" and state.get("principal") is not None:
            return None
        if scheme == "bearer":
            raise AccessDenied(
                f"agent runtime {runtime_id} has no JWT authorizer: it does not accept bearer tokens; "
                "sign the request with SigV4"
            )
        raise MissingAuthenticationToken("Missing Authentication Token")
    if scheme == "sigv4":
        raise AccessDenied(
            f"agent runtime {runtime_id} has a JWT authorizer: call it with an OAuth bearer token, "
            "not a SigV4 signature"
        )
    try:
        token = bearer_token(headers.get("authorization"))
    except MissingBearerToken as error:
        raise Unauthorized(str(error)) from None
    claims = await authorizer.verify(token, jwt)
    return claims.user_id


__all__ = ["MissingAuthenticationToken", "admitted_route", "authorize"]
