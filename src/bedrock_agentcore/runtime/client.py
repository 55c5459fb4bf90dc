"""`AgentCoreRuntimeClient`: WebSocket URLs and credentials for agents on a runtime, and boto3 pass-through.

Points at Amazon's regional endpoint by default, or at a self-hosted runtime server with
`endpoint_url` (`http://` becomes `ws://`, `https://` becomes `wss://`). botocore is imported only
when a method needs it, so agents that never use this client never load it.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

logger = logging.getLogger("bedrock_agentcore.runtime.client")

SERVICE = "bedrock-agentcore"
DEFAULT_REGION = "us-west-2"
MAX_PRESIGNED_EXPIRY = 300
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
USER_AGENT = "open-agentcore-runtime-client/1.0"

_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock-agentcore:[a-z0-9-]+:\d{12}:runtime/[A-Za-z][A-Za-z0-9_-]*$")
_DATA_PLANE_METHODS = frozenset({"invoke_agent_runtime", "stop_runtime_session"})
_CONTROL_PLANE_METHODS = frozenset(
    {
        "create_agent_runtime",
        "get_agent_runtime",
        "update_agent_runtime",
        "delete_agent_runtime",
        "list_agent_runtimes",
        "list_agent_runtime_versions",
        "create_agent_runtime_endpoint",
        "get_agent_runtime_endpoint",
        "update_agent_runtime_endpoint",
        "delete_agent_runtime_endpoint",
        "list_agent_runtime_endpoints",
    }
)


def resolve_region(region: str | None, environ: Mapping[str, str] = os.environ, session: Any = None) -> str:
    """The explicit region, else the session's, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else us-west-2.

    A boto3 session carries the region its credentials are meant for: signing for any other
    region makes every request fail, so it wins over the environment.
    """
    session_region: str | None = getattr(session, "region_name", None) if session is not None else None
    return (
        region
        or session_region
        or environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or DEFAULT_REGION
    )


def _check_arn(runtime_arn: str) -> None:
    if not _ARN.match(runtime_arn or ""):
        raise ValueError(
            f"not an agent runtime ARN: {runtime_arn!r} "
            "(expected arn:aws:bedrock-agentcore:<region>:<12-digit account>:runtime/<runtime id>)"
        )


def _connection_headers(session_id: str) -> dict[str, str]:
    # Only what a WebSocket library does not set itself: Host, Upgrade, Connection and the
    # Sec-WebSocket-* headers come from the library, and a second copy breaks the handshake.
    return {SESSION_HEADER: session_id, "User-Agent": USER_AGENT}


class AgentCoreRuntimeClient:
    """Builds authenticated WebSocket connections to deployed agents.

    `generate_ws_connection` signs the upgrade request with SigV4 headers,
    `generate_presigned_url` puts the signature in the query (for browsers, at most 300 s), and
    `generate_ws_connection_oauth` uses a bearer token. `invoke_agent_runtime`,
    `stop_runtime_session` and the control-plane calls are forwarded to boto3 clients built for
    the same region and endpoint.
    """

    def __init__(
        self,
        region: str | None = None,
        session: Any = None,
        integration_source: str | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self.region = resolve_region(region or region_name, session=session)
        self.session = session
        # Names the framework that built this client (e.g. "langchain"); sent in boto3's user agent.
        self.integration_source = integration_source
        self.endpoint_url = endpoint_url
        self._http_scheme, self._ws_scheme, self._host = self._endpoint(endpoint_url)
        self._boto_clients: dict[str, Any] = {}

    def _endpoint(self, endpoint_url: str | None) -> tuple[str, str, str]:
        if endpoint_url is None:
            return "https", "wss", f"bedrock-agentcore.{self.region}.amazonaws.com"
        parts = urlsplit(endpoint_url)
        schemes = {"http": "ws", "https": "wss"}
        if parts.scheme not in schemes or not parts.netloc:
            raise ValueError(f"endpoint_url must be an http:// or https:// URL, got {endpoint_url!r}")
        return parts.scheme, schemes[parts.scheme], parts.netloc

    # URLs -----------------------------------------------------------------------------------

    def _path(self, runtime_arn: str) -> str:
        return f"/runtimes/{quote(runtime_arn, safe='')}/ws"

    def _url(self, scheme: str, runtime_arn: str, query: Mapping[str, str]) -> str:
        url = f"{scheme}://{self._host}{self._path(runtime_arn)}"
        return f"{url}?{urlencode(dict(query))}" if query else url

    # Signing --------------------------------------------------------------------------------

    def _credentials(self) -> Any:
        if self.session is not None:
            credentials = self.session.get_credentials()
        else:
            import botocore.session

            credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise RuntimeError(
                "No AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, "
                "or pass session= (for a local runtime server: `agentcore server credentials`)"
            )
        return credentials.get_frozen_credentials()

    def generate_ws_connection(
        self, runtime_arn: str, session_id: str | None = None, endpoint_name: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """A WebSocket URL and headers carrying a SigV4 signature (service `bedrock-agentcore`).

        A new session id (uuid4) is used when none is given. Pass the headers whole to a
        WebSocket library (`additional_headers=` / `extra_headers=` in `websockets`): they hold
        none of the handshake headers the library sets itself.
        """
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        _check_arn(runtime_arn)
        session_id = session_id or str(uuid.uuid4())
        query = {"qualifier": endpoint_name} if endpoint_name else {}
        credentials = self._credentials()
        amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        request = AWSRequest(
            method="GET",
            url=self._url(self._http_scheme, runtime_arn, query),
            headers={"host": self._host, "x-amz-date": amz_date},
        )
        SigV4Auth(credentials, SERVICE, self.region).add_auth(request)
        headers = _connection_headers(session_id)
        headers["X-Amz-Date"] = request.headers["x-amz-date"]
        headers["Authorization"] = request.headers["Authorization"]
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        logger.debug("Signed WebSocket connection for session %s", session_id)
        return self._url(self._ws_scheme, runtime_arn, query), headers

    def generate_presigned_url(
        self,
        runtime_arn: str,
        session_id: str | None = None,
        endpoint_name: str | None = None,
        custom_headers: Mapping[str, str] | None = None,
        expires: int = MAX_PRESIGNED_EXPIRY,
    ) -> str:
        """A WebSocket URL with the SigV4 signature in its query, valid for `expires` seconds (≤ 300).

        `custom_headers` become extra query parameters, signed with the rest; the mapping passed
        in is never modified.
        """
        from botocore.auth import SigV4QueryAuth
        from botocore.awsrequest import AWSRequest

        if not 1 <= expires <= MAX_PRESIGNED_EXPIRY:
            raise ValueError(f"expires must be between 1 and {MAX_PRESIGNED_EXPIRY} seconds, got {expires}")
        _check_arn(runtime_arn)
        query: dict[str, str] = {}
        if endpoint_name:
            query["qualifier"] = endpoint_name
        query.update(custom_headers or {})
        query[SESSION_HEADER] = session_id or str(uuid.uuid4())
        request = AWSRequest(
            method="GET", url=self._url(self._http_scheme, runtime_arn, query), headers={"host": self._host}
        )
        SigV4QueryAuth(self._credentials(), SERVICE, self.region, expires=expires).add_auth(request)
        signed: str = request.url
        return self._ws_scheme + signed[len(self._http_scheme) :]

    def generate_ws_connection_oauth(
        self,
        runtime_arn: str,
        bearer_token: str,
        session_id: str | None = None,
        endpoint_name: str | None = None,
    ) -> tuple[str, dict[str, str]]:
        """A WebSocket URL and headers authenticating with an OAuth bearer token (never logged)."""
        if not bearer_token:
            raise ValueError("bearer_token must not be empty")
        _check_arn(runtime_arn)
        session_id = session_id or str(uuid.uuid4())
        query = {"qualifier": endpoint_name} if endpoint_name else {}
        headers = _connection_headers(session_id)
        headers["Authorization"] = f"Bearer {bearer_token}"
        return self._url(self._ws_scheme, runtime_arn, query), headers

    # boto3 pass-through ---------------------------------------------------------------------

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name in _DATA_PLANE_METHODS:
            return getattr(self._boto_client("bedrock-agentcore"), name)  # type: ignore[no-any-return]
        if name in _CONTROL_PLANE_METHODS:
            return getattr(self._boto_client("bedrock-agentcore-control"), name)  # type: ignore[no-any-return]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _boto_client(self, service: str) -> Any:
        client = self._boto_clients.get(service)
        if client is None:
            try:
                import boto3
            except ImportError:
                raise ImportError(f"{service} calls need boto3: pip install boto3") from None
            factory = self.session if self.session is not None and hasattr(self.session, "client") else boto3
            options: dict[str, Any] = {"region_name": self.region, "endpoint_url": self.endpoint_url}
            if self.integration_source:
                from botocore.config import Config

                options["config"] = Config(user_agent_extra=f"integration/{self.integration_source}")
            client = factory.client(service, **options)
            self._boto_clients[service] = client
        return client


__all__ = ["DEFAULT_REGION", "MAX_PRESIGNED_EXPIRY", "AgentCoreRuntimeClient", "resolve_region"]
