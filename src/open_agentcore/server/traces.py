"""Trace routes: the OTLP/HTTP receiver (`POST /v1/traces`) and the read API the console uses.

The receiver takes SigV4 callers and workers' span credentials; what a worker posts is stamped
with its own runtime and session. The read API decides access per runtime in the handler: a trace
is shown only to callers whose policies allow the action on every runtime its spans belong to.
"""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from open_agentcore.auth import Caller, Scheme
from open_agentcore.runtimes.validation import RUNTIME_ID
from open_agentcore.store import SpanRecord, Store, TraceSummary
from open_agentcore.telemetry import InvalidSpanCredential, OtlpError, Telemetry, decode, inflate
from open_agentcore.telemetry.otlp import PROTOBUF
from open_agentcore.telemetry.pace import Pace

from .access import AccessDirectory
from .authentication import caller_of
from .errors import AccessDenied, NotFound, ServiceError, Unauthorized, ValidationError
from .operations import OperationTable

MAX_OTLP_BODY = 8 * 1024 * 1024  # one export, as sent (gzip included)
_DEFAULT_LIMIT, _MAX_LIMIT = 50, 100


class TracingOff(ServiceError):
    code = "ResourceNotFoundException"
    status = 404


def _telemetry(request: Request) -> Telemetry:
    telemetry: Telemetry | None = request.app.state.telemetry
    if telemetry is None:
        raise TracingOff("this server runs with --tracing off: it neither receives nor keeps spans")
    return telemetry


async def export(request: Request) -> Response:
    """ExportTraces: an OTLP/HTTP trace export, protobuf or JSON, gzip or not."""
    telemetry = _telemetry(request)
    runtime_id, session_id = _source(
        telemetry, caller_of(request.scope), request.headers.get("authorization")
    )
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    encoding = request.headers.get("content-encoding", "")
    try:
        # Off the event loop: unpacking and parsing thousands of spans would stall every other request.
        records = await asyncio.to_thread(_read_export, body, encoding, content_type)
    except OtlpError as error:
        raise ValidationError(str(error)) from None
    for record in records:
        record.stamp(runtime_id, session_id)
    dropped = telemetry.sink.submit_many(records)
    answer = ExportTraceServiceResponse()
    if dropped:
        answer.partial_success.rejected_spans = dropped
        answer.partial_success.error_message = "the server's span queue is full"
    if content_type.split(";", 1)[0].strip().lower() == PROTOBUF:
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    body_json: dict[str, Any] = {}
    if dropped:
        body_json["partialSuccess"] = {
            "rejectedSpans": str(dropped),
            "errorMessage": answer.partial_success.error_message,
        }
    return JSONResponse(body_json)


def _read_export(body: bytes, encoding: str, content_type: str) -> list[SpanRecord]:
    return decode(inflate(body, encoding), content_type, Pace())


def _source(telemetry: Telemetry, caller: Caller, authorization: str | None) -> tuple[str | None, str | None]:
    """Where the posted spans come from: a worker's runtime and session, or nowhere in particular
    for a SigV4 caller (whose policy allowed ExportTraces)."""
    if caller.scheme is Scheme.SIGV4:
        return None, None
    scheme, _, token = (authorization or "").strip().partition(" ")
    if caller.scheme is not Scheme.BEARER or scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "sign the request with SigV4, or send a worker's span credential as a bearer token"
        )
    try:
        source = telemetry.credentials.source(token.strip())
    except InvalidSpanCredential as error:
        raise Unauthorized(str(error)) from None
    return source.runtime_id, source.session_id


async def list_traces(request: Request) -> Response:
    """ListTraces: newest first, of one runtime (and session) or of every runtime the caller may see."""
    _telemetry(request)
    store: Store = request.app.state.store
    query = request.query_params
    runtime_id, session_id = query.get("runtime"), query.get("session")
    if runtime_id is not None and not RUNTIME_ID.match(runtime_id):
        raise ValidationError(f"{runtime_id[:120]!r} is not an agent runtime id", field="runtime")
    if session_id is not None and not 1 <= len(session_id) <= 256:
        raise ValidationError("a session id is 1 to 256 characters", field="session")
    limit = _limit(query.get("limit"))
    caller = caller_of(request.scope)
    gate = _Gate(request, "ListTraces")
    if runtime_id is not None:
        await gate.require(caller, runtime_id)
        runtime_ids: list[str] | None = [runtime_id]
        unscoped = False
    elif caller.admin:
        runtime_ids, unscoped = None, True
    else:
        known = await asyncio.to_thread(store.traced_runtime_ids)
        runtime_ids = [rid for rid in known if await gate.allows(caller, rid)]
        unscoped = await gate.allows(caller, None)
    page = await asyncio.to_thread(
        store.list_traces, runtime_ids, session_id, limit, query.get("nextToken"), unscoped
    )
    body: dict[str, Any] = {"traces": [_summary(trace) for trace in page.items]}
    if page.next_token:
        body["nextToken"] = page.next_token
    return JSONResponse(body)


async def get_trace(request: Request) -> Response:
    """GetTrace: every span of one trace, once the caller may see every runtime it touches."""
    _telemetry(request)
    store: Store = request.app.state.store
    trace_id = request.path_params["trace_id"]
    spans = await asyncio.to_thread(store.get_trace, trace_id)
    if not spans:
        raise NotFound(f"no trace {trace_id} is kept (it may have aged out)")
    caller = caller_of(request.scope)
    gate = _Gate(request, "GetTrace")
    runtimes = {span.runtime_id for span in spans}
    for runtime_id in sorted(runtimes, key=lambda r: r or ""):
        await gate.require(caller, runtime_id)
    return JSONResponse({"traceId": trace_id, "spans": [_span(span) for span in spans]})


class _Gate:
    """Policy decisions of one trace request, per runtime (None: spans of no runtime)."""

    def __init__(self, request: Request, name: str) -> None:
        self._directory: AccessDirectory = request.app.state.access
        self._table: OperationTable = request.app.state.operations
        self._action = f"bedrock-agentcore:{name}"

    async def require(self, caller: Caller, runtime_id: str | None) -> None:
        resource = self._table.runtime_arn(runtime_id or "*")
        await self._directory.check_on(caller, self._action, resource, runtime_id)

    async def allows(self, caller: Caller, runtime_id: str | None) -> bool:
        try:
            await self.require(caller, runtime_id)
        except AccessDenied:
            return False
        return True


def _limit(text: str | None) -> int:
    if text is None:
        return _DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= _MAX_LIMIT:
        raise ValidationError(f"limit must be a whole number from 1 to {_MAX_LIMIT}", field="limit")
    return int(text)


def _summary(trace: TraceSummary) -> dict[str, Any]:
    return {
        "traceId": trace.trace_id,
        "rootName": trace.root_name,
        "startTimeUnixNano": str(trace.start_ns),
        "durationNanos": str(trace.duration_ns),
        "spanCount": trace.span_count,
        "runtimeId": trace.runtime_id,
        "sessionId": trace.session_id,
        "status": trace.status,
    }


def _span(span: SpanRecord) -> dict[str, Any]:
    return {
        "spanId": span.span_id,
        "parentSpanId": span.parent_span_id,
        "name": span.name,
        "kind": span.kind,
        "service": span.service,
        "startTimeUnixNano": str(span.start_ns),
        "endTimeUnixNano": str(span.end_ns),
        "attributes": span.attributes,
        "status": {"code": span.status_code, "message": span.status_message},
        "events": span.events,
    }


__all__ = ["MAX_OTLP_BODY", "export", "get_trace", "list_traces"]
