"""Control-plane routes, exactly as boto3's `bedrock-agentcore-control` sends them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from open_agentcore.auth.policies import PolicyError, parse_policy
from open_agentcore.runtimes import RuntimeService
from open_agentcore.runtimes.validation import check_description, check_name, check_tag_keys, check_tags
from open_agentcore.store import RuntimeRecord, VersionRecord

from .access import AccessDirectory
from .authentication import caller_of
from .errors import ValidationError
from .operations import SERVICE, OperationTable
from .requests import json_body, max_results, version_param
from .shapes import endpoint_detail, runtime_detail, runtime_summary, timestamp, version_summary


def _service(request: Request) -> RuntimeService:
    service: RuntimeService = request.app.state.runtimes
    return service


async def create_runtime(request: Request) -> Response:
    service = _service(request)
    body = await json_body(request)
    token = body.get("clientToken")
    if isinstance(token, str) and token:
        existing = await asyncio.to_thread(service.store.recall_token, "CreateAgentRuntime", token)
        if existing is not None:
            runtime = await asyncio.to_thread(service.store.get_runtime, existing)
            version = await asyncio.to_thread(service.store.get_version, existing, 1)
            return _created(runtime, version)
    runtime, version = await service.create(body)
    if isinstance(token, str) and token:
        await asyncio.to_thread(service.store.remember_token, "CreateAgentRuntime", token, runtime.id)
    return _created(runtime, version)


def _page(key: str, items: list[dict[str, Any]], next_token: str | None) -> Response:
    """A listing in the wire shape: the items under `key`, and `nextToken` when there is more."""
    body: dict[str, Any] = {key: items}
    if next_token:
        body["nextToken"] = next_token
    return JSONResponse(body)


def _created(runtime: RuntimeRecord, version: VersionRecord) -> Response:
    return JSONResponse(
        {
            "agentRuntimeArn": runtime.arn,
            "agentRuntimeId": runtime.id,
            "agentRuntimeVersion": str(version.version),
            "createdAt": timestamp(version.created_at),
            "status": version.status.value,
        },
        status_code=202,
    )


async def get_runtime(request: Request) -> Response:
    store = _service(request).store
    runtime_id = request.path_params["runtime_id"]
    version = version_param(request.query_params.get("version"))
    runtime = await asyncio.to_thread(store.get_runtime, runtime_id)
    record = await asyncio.to_thread(store.get_version, runtime_id, version)
    return JSONResponse(runtime_detail(runtime, record))


async def list_runtimes(request: Request) -> Response:
    store = _service(request).store
    page = await asyncio.to_thread(
        store.list_runtimes, max_results(request), request.query_params.get("nextToken")
    )
    visible = await _visible(request, page.items)
    return _page("agentRuntimes", [runtime_summary(r) for r in visible], page.next_token)


async def _visible(request: Request, runtimes: list[RuntimeRecord]) -> list[RuntimeRecord]:
    """The runtimes the caller may describe: a key limited to some runtimes lists only those
    (a page may then hold fewer than asked for; its next token still goes on)."""
    directory: AccessDirectory = request.app.state.access
    table: OperationTable = request.app.state.operations
    caller = caller_of(request.scope)
    action = f"{SERVICE}:GetAgentRuntime"
    return [r for r in runtimes if await directory.allows(caller, action, table.runtime_arn(r.id), r.id)]


async def update_runtime(request: Request) -> Response:
    runtime, version = await _service(request).update(
        request.path_params["runtime_id"], await json_body(request)
    )
    return JSONResponse(
        {
            "agentRuntimeArn": runtime.arn,
            "agentRuntimeId": runtime.id,
            "agentRuntimeVersion": str(version.version),
            "createdAt": timestamp(runtime.created_at),
            "lastUpdatedAt": timestamp(version.created_at),
            "status": version.status.value,
        },
        status_code=202,
    )


async def delete_runtime(request: Request) -> Response:
    runtime = await _service(request).delete(request.path_params["runtime_id"])
    return JSONResponse(
        {
            "status": "DELETING",
            "agentRuntimeId": runtime.id,
            "agentRuntimeVersion": str(runtime.latest_version),
        },
        status_code=202,
    )


async def list_versions(request: Request) -> Response:
    store = _service(request).store
    runtime_id = request.path_params["runtime_id"]
    runtime = await asyncio.to_thread(store.get_runtime, runtime_id)
    page = await asyncio.to_thread(
        store.list_versions, runtime_id, max_results(request), request.query_params.get("nextToken")
    )
    return _page("agentRuntimes", [version_summary(runtime, v) for v in page.items], page.next_token)


async def create_endpoint(request: Request) -> Response:
    store = _service(request).store
    runtime_id = request.path_params["runtime_id"]
    body = await json_body(request)
    name = check_name(body.get("name"), "name")
    version = version_param(body.get("agentRuntimeVersion"))
    runtime = await asyncio.to_thread(store.get_runtime, runtime_id)
    endpoint = await asyncio.to_thread(
        store.create_endpoint, runtime_id, name, version, check_description(body.get("description")) or ""
    )
    _service(request).forget_routes(runtime_id)
    return JSONResponse(endpoint_detail(runtime, endpoint), status_code=202)


async def get_endpoint(request: Request) -> Response:
    store = _service(request).store
    runtime_id, name = request.path_params["runtime_id"], request.path_params["endpoint"]
    runtime = await asyncio.to_thread(store.get_runtime, runtime_id)
    return JSONResponse(
        endpoint_detail(runtime, await asyncio.to_thread(store.get_endpoint, runtime_id, name))
    )


async def list_endpoints(request: Request) -> Response:
    store = _service(request).store
    runtime_id = request.path_params["runtime_id"]
    runtime = await asyncio.to_thread(store.get_runtime, runtime_id)
    page = await asyncio.to_thread(
        store.list_endpoints, runtime_id, max_results(request), request.query_params.get("nextToken")
    )
    return _page("runtimeEndpoints", [endpoint_detail(runtime, e) for e in page.items], page.next_token)


async def update_endpoint(request: Request) -> Response:
    store = _service(request).store
    runtime_id, name = request.path_params["runtime_id"], request.path_params["endpoint"]
    body = await json_body(request)
    version = version_param(body.get("agentRuntimeVersion"))
    runtime = await asyncio.to_thread(store.get_runtime, runtime_id)
    endpoint = await asyncio.to_thread(
        store.update_endpoint, runtime_id, name, version, check_description(body.get("description"))
    )
    _service(request).forget_routes(runtime_id)
    return JSONResponse(endpoint_detail(runtime, endpoint), status_code=202)


async def delete_endpoint(request: Request) -> Response:
    store = _service(request).store
    runtime_id, name = request.path_params["runtime_id"], request.path_params["endpoint"]
    if name == "DEFAULT":
        raise ValidationError("the DEFAULT endpoint is deleted with its runtime", field="endpointName")
    endpoint = await asyncio.to_thread(store.delete_endpoint, runtime_id, name)
    _service(request).forget_routes(runtime_id)
    return JSONResponse(
        {"status": "DELETING", "agentRuntimeId": runtime_id, "endpointName": endpoint.name}, status_code=202
    )


async def put_resource_policy(request: Request) -> Response:
    store, runtime_id = _service(request).store, request.path_params["runtime_id"]
    body = await json_body(request)
    text = body.get("policy")
    if not isinstance(text, str):
        raise ValidationError("policy is required: the policy document as a JSON string", field="policy")
    try:
        parse_policy(text, resource_policy=True)
    except PolicyError as error:
        raise ValidationError(str(error), field=f"policy.{error.field}") from None
    await asyncio.to_thread(store.put_resource_policy, runtime_id, json.loads(text))
    request.app.state.access.forget_resource_policy(runtime_id)
    return JSONResponse({"policy": text}, status_code=201)


async def get_resource_policy(request: Request) -> Response:
    store, runtime_id = _service(request).store, request.path_params["runtime_id"]
    record = await asyncio.to_thread(store.get_resource_policy, runtime_id)
    return JSONResponse({"policy": json.dumps(record.policy)})


async def delete_resource_policy(request: Request) -> Response:
    store, runtime_id = _service(request).store, request.path_params["runtime_id"]
    await asyncio.to_thread(store.delete_resource_policy, runtime_id)
    request.app.state.access.forget_resource_policy(runtime_id)
    return Response(status_code=204)


async def tag_resource(request: Request) -> Response:
    store, runtime_id = _service(request).store, request.path_params["runtime_id"]
    body = await json_body(request)
    if "tags" not in body:
        raise ValidationError("tags is required: a map of tag keys to values", field="tags")
    await asyncio.to_thread(store.tag_runtime, runtime_id, check_tags(body["tags"]))
    return Response(status_code=204)


async def untag_resource(request: Request) -> Response:
    store, runtime_id = _service(request).store, request.path_params["runtime_id"]
    keys = check_tag_keys(request.query_params.getlist("tagKeys"))
    await asyncio.to_thread(store.untag_runtime, runtime_id, keys)
    return Response(status_code=204)


async def list_tags(request: Request) -> Response:
    store, runtime_id = _service(request).store, request.path_params["runtime_id"]
    return JSONResponse({"tags": await asyncio.to_thread(store.runtime_tags, runtime_id)})


__all__ = [
    "create_endpoint",
    "create_runtime",
    "delete_endpoint",
    "delete_resource_policy",
    "delete_runtime",
    "get_endpoint",
    "get_resource_policy",
    "get_runtime",
    "list_endpoints",
    "list_runtimes",
    "list_tags",
    "list_versions",
    "put_resource_policy",
    "tag_resource",
    "untag_resource",
    "update_endpoint",
    "update_runtime",
]
