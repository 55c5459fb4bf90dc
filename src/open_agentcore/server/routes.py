"""The runtime server's operations: AgentCore's data and control planes, and our `/_agentcore/` extensions.

This list is the only place an operation is declared. Data-plane operations come first: they are
the hot path, and classification tries templates in this order.
"""

from __future__ import annotations

from open_agentcore.artifacts.storage import MAX_UPLOAD

from . import access_keys, console, control, data, extensions, metrics, traces, websocket
from .access import FOR_USER
from .operations import WEBSOCKET, Auth, Operation, OperationTable
from .operations import Resource as R

OPERATIONS: tuple[Operation, ...] = (
    # Data plane (boto3 `bedrock-agentcore`): the runtime's JWT authorizer may admit bearer tokens.
    Operation("InvokeAgentRuntime", "POST", "/runtimes/{runtime}/invocations", R.RUNTIME, data.invoke,
              Auth.RUNTIME),
    Operation("InvokeAgentRuntimeWithWebSocketStream", WEBSOCKET, "/runtimes/{runtime}/ws", R.RUNTIME,
              websocket.proxy, Auth.RUNTIME_PRESIGNED),
    Operation("StopRuntimeSession", "POST", "/runtimes/{runtime}/stopruntimesession", R.RUNTIME,
              data.stop_session, Auth.RUNTIME),
    Operation("GetAgentCard", "GET", "/runtimes/{runtime}/invocations/.well-known/agent-card.json", R.RUNTIME,
              data.agent_card, Auth.RUNTIME),
    # Control plane (boto3 `bedrock-agentcore-control`).
    Operation("CreateAgentRuntime", "PUT", "/runtimes/", R.NONE, control.create_runtime),
    Operation("ListAgentRuntimes", "POST", "/runtimes/", R.NONE, control.list_runtimes),
    Operation("GetAgentRuntime", "GET", "/runtimes/{runtime_id}/", R.RUNTIME, control.get_runtime),
    Operation("UpdateAgentRuntime", "PUT", "/runtimes/{runtime_id}/", R.RUNTIME, control.update_runtime),
    Operation("DeleteAgentRuntime", "DELETE", "/runtimes/{runtime_id}/", R.RUNTIME, control.delete_runtime),
    Operation("ListAgentRuntimeVersions", "POST", "/runtimes/{runtime_id}/versions/", R.RUNTIME,
              control.list_versions),
    Operation("CreateAgentRuntimeEndpoint", "PUT", "/runtimes/{runtime_id}/runtime-endpoints/", R.RUNTIME,
              control.create_endpoint),
    Operation("ListAgentRuntimeEndpoints", "POST", "/runtimes/{runtime_id}/runtime-endpoints/", R.RUNTIME,
              control.list_endpoints),
    Operation("GetAgentRuntimeEndpoint", "GET", "/runtimes/{runtime_id}/runtime-endpoints/{endpoint}/",
              R.ENDPOINT, control.get_endpoint),
    Operation("UpdateAgentRuntimeEndpoint", "PUT", "/runtimes/{runtime_id}/runtime-endpoints/{endpoint}/",
              R.ENDPOINT, control.update_endpoint),
    Operation("DeleteAgentRuntimeEndpoint", "DELETE", "/runtimes/{runtime_id}/runtime-endpoints/{endpoint}/",
              R.ENDPOINT, control.delete_endpoint),
    Operation("PutResourcePolicy", "PUT", "/resourcepolicy/{resource_arn}", R.RUNTIME,
              control.put_resource_policy),
    Operation("GetResourcePolicy", "GET", "/resourcepolicy/{resource_arn}", R.RUNTIME,
              control.get_resource_policy),
    Operation("DeleteResourcePolicy", "DELETE", "/resourcepolicy/{resource_arn}", R.RUNTIME,
              control.delete_resource_policy),
    # Tags of runtimes (the ARN percent-encoded in one path segment, as botocore sends it).
    Operation("TagResource", "POST", "/tags/{tagged_arn}", R.RUNTIME, control.tag_resource),
    Operation("UntagResource", "DELETE", "/tags/{tagged_arn}", R.RUNTIME, control.untag_resource),
    Operation("ListTagsForResource", "GET", "/tags/{tagged_arn}", R.RUNTIME, control.list_tags),
    # Extensions (ours, same SigV4 authentication; the health check alone is public).
    Operation("Health", "GET", "/_agentcore/health", R.NONE, extensions.health, Auth.PUBLIC, traced=False),
    Operation("UploadArtifact", "PUT", "/_agentcore/artifacts", R.NONE, extensions.upload_artifact,
              max_body=MAX_UPLOAD),
    # ?offset=N: the log from byte N on, for following a build as it runs.
    Operation("GetBuildLog", "GET", "/_agentcore/runtimes/{runtime_id}/versions/{version}/build-log",
              R.RUNTIME, extensions.build_log),
    Operation("ListRuntimeSessions", "GET", "/_agentcore/runtimes/{runtime_id}/sessions", R.RUNTIME,
              extensions.list_sessions),
    Operation("GetRuntimeSessionLogs", "GET", "/_agentcore/runtimes/{runtime_id}/sessions/{session_id}/logs",
              R.RUNTIME, extensions.session_logs),
    # One invocation in flight, by the request id its answer named (x-amzn-RequestId) or its caller chose.
    Operation("CancelRuntimeInvocation", "POST",
              "/_agentcore/runtimes/{runtime}/sessions/{session_id}/requests/{request_id}/cancel", R.RUNTIME,
              data.cancel, Auth.RUNTIME),
    # Prometheus exposition (also served unauthenticated on --metrics-port, when given).
    Operation("GetMetrics", "GET", metrics.PATH, R.NONE, metrics.get_metrics),
    # Traces: OTLP/HTTP in at its standard path (so an exporter given the server's base URL works),
    # signed, or with a worker's span credential; the read API decides per runtime in the handler.
    Operation("ExportTraces", "POST", "/v1/traces", R.NONE, traces.export, Auth.SPANS,
              max_body=traces.MAX_OTLP_BODY, traced=False),
    Operation("ListTraces", "GET", "/_agentcore/traces", R.IN_HANDLER, traces.list_traces, traced=False),
    Operation("GetTrace", "GET", "/_agentcore/traces/{trace_id}", R.IN_HANDLER, traces.get_trace,
              traced=False),
    # Access keys of other principals: the admin key alone, whatever any policy says.
    Operation("CreateAccessKey", "POST", "/_agentcore/access-keys", R.NONE, access_keys.create_access_key,
              Auth.ADMIN),
    Operation("ListAccessKeys", "GET", "/_agentcore/access-keys", R.NONE, access_keys.list_access_keys,
              Auth.ADMIN),
    Operation("RevokeAccessKey", "DELETE", "/_agentcore/access-keys/{access_key_id}", R.NONE,
              access_keys.revoke_access_key, Auth.ADMIN),
    # The web console: its page and assets hold no data. Its session routes are public to the
    # middleware and judge the login (the key's secret) or the cookie themselves; every other
    # call of the console is one of the operations above, authenticated by its cookie.
    Operation("GetConsole", "GET", "/_agentcore/console", R.NONE, console.to_page, Auth.PUBLIC),
    Operation("GetConsolePage", "GET", "/_agentcore/console/", R.NONE, console.page, Auth.PUBLIC),
    Operation("GetConsoleAsset", "GET", "/_agentcore/console/assets/{asset}", R.NONE, console.asset,
              Auth.PUBLIC),
    Operation("ConsoleLogin", "POST", "/_agentcore/console/login", R.NONE, console.login, Auth.PUBLIC),
    Operation("ConsoleLogout", "POST", "/_agentcore/console/logout", R.NONE, console.logout, Auth.PUBLIC),
    Operation("GetConsoleSession", "GET", "/_agentcore/console/session", R.NONE, console.whoami,
              Auth.PUBLIC),
)  # fmt: skip

# Every action a policy may name: the operations' own, and acting for a user id.
ACTIONS: tuple[str, ...] = tuple(sorted({operation.action for operation in OPERATIONS} | {FOR_USER}))


def operation_table(region: str, account: str) -> OperationTable:
    """The table of one server, which builds ARNs in its region and account."""
    return OperationTable(OPERATIONS, region, account)


__all__ = ["ACTIONS", "FOR_USER", "OPERATIONS", "operation_table"]
