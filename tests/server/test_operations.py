"""Classifying requests by the operation table (`server/operations.py`): what repeats is not parsed
again, and nothing of one request's classification leaks into another's."""

from __future__ import annotations

from urllib.parse import quote

from open_agentcore.server.errors import ValidationError
from open_agentcore.server.operations import OperationMatch, Unmatched
from open_agentcore.server.routes import operation_table

ACCOUNT = "000000000000"
ARN = f"arn:aws:bedrock-agentcore:us-east-1:{ACCOUNT}:runtime/hello-AAAAAAAAAA"


def _scope(method: str, path: str, kind: str = "http") -> dict[str, object]:
    return {"type": kind, "method": method, "path": path, "raw_path": path.encode()}


def test_a_path_classified_again_gives_the_same_operation_and_resource() -> None:
    table = operation_table("us-east-1", ACCOUNT)
    path = f"/runtimes/{quote(ARN, safe='')}/invocations"
    first, again = table.classify(_scope("POST", path)), table.classify(_scope("POST", path))
    assert isinstance(first, OperationMatch) and first.operation.name == "InvokeAgentRuntime"
    assert again == first
    assert again.resource == ARN and again.params == {"runtime_id": "hello-AAAAAAAAAA"}


def test_another_method_on_a_known_path_is_not_answered_from_what_was_kept() -> None:
    table = operation_table("us-east-1", ACCOUNT)
    path = f"/runtimes/{quote(ARN, safe='')}/invocations"
    assert isinstance(table.classify(_scope("POST", path)), OperationMatch)
    refused = table.classify(_scope("GET", path))
    assert isinstance(refused, Unmatched) and refused.error.status == 405


def test_a_malformed_parameter_is_reported_every_time() -> None:
    table = operation_table("us-east-1", ACCOUNT)
    path = "/runtimes/not%20an%20id/invocations"
    for _ in range(3):
        found = table.classify(_scope("POST", path))
        assert isinstance(found, OperationMatch) and isinstance(found.error, ValidationError)


def test_the_routes_own_parameters_are_a_copy_a_handler_cannot_spoil() -> None:
    table = operation_table("us-east-1", ACCOUNT)
    path = f"/runtimes/{quote(ARN, safe='')}/invocations"
    scope = _scope("POST", path)
    found = table.classify(scope)
    assert isinstance(found, OperationMatch)
    scope["agentcore.match"] = found
    route = next(route for route in table.routes() if route.operation is found.operation)  # type: ignore[attr-defined]
    _, child = route.matches(scope)
    child["path_params"]["runtime_id"] = "other-BBBBBBBBBB"
    again = table.classify(_scope("POST", path))
    assert isinstance(again, OperationMatch) and again.params == {"runtime_id": "hello-AAAAAAAAAA"}


def test_a_flood_of_distinct_paths_is_classified_correctly_throughout() -> None:
    table = operation_table("us-east-1", ACCOUNT)
    for number in range(5000):
        runtime_id = f"r{number}-AAAAAAAAAA"
        found = table.classify(_scope("POST", f"/runtimes/{runtime_id}/invocations"))
        assert isinstance(found, OperationMatch) and found.params == {"runtime_id": runtime_id}
