"""Who may call a runtime: SigV4 callers, or bearer-token callers when its version has a JWT authorizer.

The authentication middleware verified any SigV4 signature already; for data-plane paths it let
bearer tokens and anonymous calls through to here, because only the runtime's configuration says
which kind it takes. Every data-plane route calls `authorize` before it does anything else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from starlette.types import Scope

from open_agentcore.auth import Caller, JwtAuthorizer, MissingBearerToken, Scheme, bearer_token
from open_agentcore.runtimes import Route, RuntimeNotReady, RuntimeService, jwt_authorizer_of
from open_agentcore.store import NotFoundError

from .authentication import caller_of
from .errors import AccessDenied, ServiceError, Unauthorized


class MissingAuthenticationToken(ServiceError):
    code = "MissingAuthenticationTokenException"
    status = 403


async def admitted_route(
    service: RuntimeService, scope: Scope, headers: Mapping[str, str], runtime_id: str, qualifier: str | None
) -> tuple[Route, Caller]:
    """The route of a data-plane call and its caller, once the caller is admitted.

    A bearer-token caller comes back with the token's subject filled in (and the scope's caller
    replaced by it). A caller who has not proven who they are learns nothing about runtimes: an
    unknown or unready runtime is the same refusal as a known one.
    """
    caller = caller_of(scope)
    try:
        route = await service.route(runtime_id, qualifier)
    except (NotFoundError, RuntimeNotReady):
        if caller.scheme is Scheme.SIGV4:
            raise
        if caller.scheme is Scheme.BEARER:
            raise AccessDenied("the bearer token is not accepted for this agent runtime") from None
        raise MissingAuthenticationToken("Missing Authentication Token") from None
    admitted = await authorize(caller, headers, route, service.authorizer)
    scope["state"]["caller"] = admitted
    return route, admitted


async def authorize(
    caller: Caller, headers: Mapping[str, str], route: Route, authorizer: JwtAuthorizer
) -> Caller:
    """Admit the call or raise the AWS error; a bearer token's caller comes back with its subject."""
    runtime_id = route.runtime.id
    jwt = jwt_authorizer_of(route.config)
    if jwt is None:
        if caller.scheme is Scheme.SIGV4:
            return caller
        if caller.scheme is Scheme.BEARER:
            raise AccessDenied(
                f"agent runtime {runtime_id} has no JWT authorizer: it does not accept bearer tokens; "
                "sign the request with SigV4"
            )
        raise MissingAuthenticationToken("Missing Authentication Token")
    if caller.scheme is Scheme.SIGV4:
        raise AccessDenied(
            f"agent runtime {runtime_id} has a JWT authorizer: call it with an OAuth bearer token, "
            "not a SigV4 signature"
        )
    try:
        token = bearer_token(headers.get("authorization"))
    except MissingBearerToken as error:
        raise Unauthorized(str(error)) from None
    claims = await authorizer.verify(token, jwt)
    return dataclasses.replace(caller, scheme=Scheme.BEARER, subject=claims.user_id)


__all__ = ["MissingAuthenticationToken", "admitted_route", "authorize"]
