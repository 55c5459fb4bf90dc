"""The control-plane operations the CLI uses, typed, with their wire details in this one place.

Parameters go where botocore puts them: `maxResults` and `nextToken` of List* operations in the
query string, `version` of GetAgentRuntime too; bodies are JSON. Listings are iterators that
follow `nextToken` to the end. A failure is a `RemoteError` (a one-line CLI error); a resource
that is gone is `None` or `False` where the caller can act on that.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from .remote import SESSION_HEADER, RemoteError, RuntimeServer, runtime_path

PAGE_SIZE = 100
NOT_FOUND = "ResourceNotFoundException"


@dataclass(frozen=True)
class RuntimeVersion:
    """What Create/UpdateAgentRuntime answer: the runtime and the version being built."""

    runtime_id: str
    arn: str
    version: str
    status: str


@dataclass(frozen=True)
class Runtime:
    """One version of a runtime as GetAgentRuntime describes it."""

    runtime_id: str
    arn: str
    name: str
    version: str
    status: str
    failure_reason: str | None

    @property
    def building(self) -> bool:
        return self.status in ("CREATING", "UPDATING")


@dataclass(frozen=True)
class RuntimeSummary:
    """One runtime in ListAgentRuntimes (or one version in ListAgentRuntimeVersions)."""

    runtime_id: str
    arn: str
    name: str
    version: str
    status: str


@dataclass(frozen=True)
class RuntimeEndpoint:
    name: str
    status: str
    live_version: str | None


@dataclass(frozen=True)
class Session:
    """A session as the server's session list shows it (`ENDED` ones only with `every`)."""

    session_id: str
    state: str
    idle_seconds: float | None
    end_reason: str | None


@dataclass(frozen=True)
class LogChunk:
    """Bytes of a build log from `offset` on; `next_offset` is where the next read starts."""

    text: str
    next_offset: int


class ControlClient:
    """The control plane (and our `/_agentcore/` extensions) of one runtime server."""

    def __init__(self, server: RuntimeServer) -> None:
        self.server = server

    @property
    def url(self) -> str:
        return self.server.url

    # Artifacts -------------------------------------------------------------------------------

    def upload(self, archive: bytes) -> str:
        """Store a zip on the server; the key names it in `codeConfiguration.code.s3.prefix`."""
        reply = self.server.request(
            "PUT", "/_agentcore/artifacts", archive, {"content-type": "application/zip"}, timeout=600
        )
        return str(reply.json()["key"])

    # Runtimes --------------------------------------------------------------------------------

    def create_runtime(self, name: str, request: Mapping[str, Any]) -> RuntimeVersion:
        return _version(self._json("PUT", "/runtimes/", {**request, "agentRuntimeName": name}))

    def update_runtime(self, runtime_id: str, request: Mapping[str, Any]) -> RuntimeVersion:
        body = {key: value for key, value in request.items() if key != "agentRuntimeName"}
        return _version(self._json("PUT", f"/runtimes/{_segment(runtime_id)}/", body))

    def get_runtime(self, runtime_id: str, version: str | None = None) -> Runtime | None:
        """The runtime (its latest version, or `version`); None when the server has no such id."""
        query = _query(version=version)
        try:
            data = self._json("GET", f"/runtimes/{_segment(runtime_id)}/{query}")
        except RemoteError as error:
            if error.code == NOT_FOUND:
                return None
            raise
        return Runtime(
            runtime_id=data["agentRuntimeId"],
            arn=data["agentRuntimeArn"],
            name=data.get("agentRuntimeName", ""),
            version=str(data["agentRuntimeVersion"]),
            status=data["status"],
            failure_reason=data.get("failureReason"),
        )

    def delete_runtime(self, runtime_id: str) -> bool:
        """Delete it with its endpoints and sessions; False when it was already gone."""
        try:
            self.server.request("DELETE", f"/runtimes/{_segment(runtime_id)}/")
        except RemoteError as error:
            if error.code == NOT_FOUND:
                return False
            raise
        return True

    def list_runtimes(self) -> Iterator[RuntimeSummary]:
        for item in self._pages("/runtimes/", "agentRuntimes"):
            yield _summary(item)

    def find_runtime(self, name: str) -> RuntimeSummary | None:
        """The runtime called `name`, wherever it is in the listing."""
        return next((runtime for runtime in self.list_runtimes() if runtime.name == name), None)

    def list_versions(self, runtime_id: str) -> Iterator[RuntimeSummary]:
        for item in self._pages(f"/runtimes/{_segment(runtime_id)}/versions/", "agentRuntimes"):
            yield _summary(item)

    def list_endpoints(self, runtime_id: str) -> Iterator[RuntimeEndpoint]:
        path = f"/runtimes/{_segment(runtime_id)}/runtime-endpoints/"
        for item in self._pages(path, "runtimeEndpoints"):
            live = item.get("liveVersion")
            yield RuntimeEndpoint(item["name"], item["status"], str(live) if live is not None else None)

    # Builds and sessions (our extensions) ----------------------------------------------------

    def build_log(self, runtime_id: str, version: str, offset: int = 0) -> LogChunk:
        """The build log from byte `offset` on; empty while the build has written nothing."""
        path = f"/_agentcore/runtimes/{_segment(runtime_id)}/versions/{_segment(version)}/build-log"
        try:
            data = self.server.request("GET", path + _query(offset=str(offset) if offset else None)).content
        except RemoteError as error:
            if error.code == NOT_FOUND:
                return LogChunk("", offset)
            raise
        # A cut may fall inside a UTF-8 character: keep whole lines only, the rest comes next time.
        complete = data[: data.rfind(b"\n") + 1]
        return LogChunk(complete.decode(errors="replace"), offset + len(complete))

    def sessions(self, runtime_id: str, every: bool = False) -> list[Session]:
        """Live sessions; with `every`, ended ones too (in the order the server lists them)."""
        return [
            Session(
                session_id=item["sessionId"],
                state=item["state"],
                idle_seconds=item.get("idleSeconds"),
                end_reason=item.get("endReason"),
            )
            for item in self.server.sessions(runtime_id, every)
        ]

    def stop_session(self, runtime_arn: str, session_id: str) -> bool:
        """StopRuntimeSession; False when the server has no active session of that id."""
        path = runtime_path(runtime_arn) + "/stopruntimesession"
        headers = {SESSION_HEADER: session_id, "content-type": "application/json"}
        try:
            self.server.request("POST", path, b"{}", headers)
        except RemoteError as error:
            if error.code == NOT_FOUND and "no active session" in str(error):
                return False
            raise
        return True

    # Wire ------------------------------------------------------------------------------------

    def _json(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = {"content-type": "application/json"} if payload is not None else None
        data: dict[str, Any] = self.server.request(method, path, body, headers).json()
        return data

    def _pages(self, path: str, key: str) -> Iterator[dict[str, Any]]:
        """Every item of a List* operation, page after page (`maxResults`, `nextToken` in the query)."""
        token: str | None = None
        while True:
            page = self._json("POST", path + _query(maxResults=str(PAGE_SIZE), nextToken=token), {})
            yield from page.get(key, [])
            token = page.get("nextToken")
            if not token:
                return


def _query(**params: str | None) -> str:
    present = {name: value for name, value in params.items() if value is not None}
    return "?" + urlencode(present, quote_via=quote) if present else ""


def _segment(value: str) -> str:
    return quote(value, safe="")


def _version(data: Mapping[str, Any]) -> RuntimeVersion:
    return RuntimeVersion(
        runtime_id=data["agentRuntimeId"],
        arn=data["agentRuntimeArn"],
        version=str(data["agentRuntimeVersion"]),
        status=data["status"],
    )


def _summary(item: Mapping[str, Any]) -> RuntimeSummary:
    return RuntimeSummary(
        runtime_id=item["agentRuntimeId"],
        arn=item["agentRuntimeArn"],
        name=item["agentRuntimeName"],
        version=str(item["agentRuntimeVersion"]),
        status=item["status"],
    )


__all__ = [
    "ControlClient",
    "LogChunk",
    "Runtime",
    "RuntimeEndpoint",
    "RuntimeSummary",
    "RuntimeVersion",
    "Session",
]
