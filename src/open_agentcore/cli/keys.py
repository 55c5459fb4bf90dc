"""`agentcore server keys create|list|revoke`: access keys for principals other than the admin.

These call the server's admin-only operations under `/_agentcore/access-keys` over HTTP, signed
with the admin key, so they work for a server on any port or machine and for any replica of
several; the CLI never opens a server's store. The server is found as every other command finds
it (`endpoint.resolve`: --endpoint-url, $AGENTCORE_ENDPOINT_URL, $AWS_ENDPOINT_URL, the server
`server start` recorded, http://127.0.0.1:8900).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import CliError

_PATH = "/_agentcore/access-keys"


def add_commands(server_commands: Any) -> None:
    keys = server_commands.add_parser(
        "keys",
        help="create, list and revoke access keys of other principals",
        description="Access keys for callers other than the admin. Each belongs to a principal "
        "(arn:aws:iam::<account>:user/<name> in policies) and carries an IAM-style policy: with "
        "none, the key may do nothing. The runtime server does the work (only its admin key may): "
        "the one --endpoint-url, $AGENTCORE_ENDPOINT_URL or $AWS_ENDPOINT_URL names, else the one "
        "`server start` recorded; requests are signed with the local server's admin key, or with "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for another server.",
        epilog="example: AGENTCORE_ENDPOINT_URL=http://127.0.0.1:8931 agentcore server keys create "
        "--name ci-bot --policy invoke-only.json",
    )
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    create = sub.add_parser(
        "create", help="create a key (its secret is printed once)",
        epilog="example: agentcore server keys create --name ci-bot --policy policy.json --json",
    )  # fmt: skip
    create.add_argument("--name", required=True, help="the principal's name")
    create.add_argument("--policy", type=Path, help="JSON policy file (IAM-style Statement list)")
    create.add_argument("--json", action="store_true", help="machine-readable output")
    create.set_defaults(handler=create_key)
    listing = sub.add_parser(
        "list", help="list keys (never their secrets)", epilog="example: agentcore server keys list"
    )
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=list_keys)
    revoke = sub.add_parser(
        "revoke", help="revoke a key", epilog="example: agentcore server keys revoke AKIA0123456789ABCDEF"
    )
    revoke.add_argument("access_key_id")
    revoke.set_defaults(handler=revoke_key)


def _call(method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    from .remote import RuntimeServer

    return RuntimeServer.connect().json(method, path, payload)


def create_key(args: argparse.Namespace) -> int:
    from .remote import RemoteError

    payload: dict[str, Any] = {"principal": args.name}
    if args.policy is not None:
        payload["policy"] = _policy_file(args.policy)
    try:
        created = _call("POST", _PATH, payload)
    except RemoteError as error:
        if error.code == "ValidationException" and str(error).startswith(f"{error.code}: policy: "):
            raise CliError(f"{args.policy}: {str(error).removeprefix(f'{error.code}: policy: ')}") from None
        raise
    if args.json:
        print(
            json.dumps(
                {
                    "accessKeyId": created["accessKeyId"],
                    "secretAccessKey": created["secretAccessKey"],
                    "principal": created["principal"],
                }
            )
        )
    else:
        print(f"access key for {created['principal']} (the secret is shown this once):")
        print(f"export AWS_ACCESS_KEY_ID={created['accessKeyId']}")
        print(f"export AWS_SECRET_ACCESS_KEY={created['secretAccessKey']}")
        if created.get("policy") is None:
            print("note: the key has no policy, so it may do nothing; create it again with --policy")
    return 0


def _policy_file(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise CliError(f"{path}: the policy is not JSON: {error}") from None


def list_keys(args: argparse.Namespace) -> int:
    listed = _call("GET", _PATH + ("?state=all" if args.all else ""))["accessKeys"]
    rows = [
        {
            "accessKeyId": key["accessKeyId"],
            "principal": key["principal"],
            "created": key["createdAt"],
            "revoked": key.get("revokedAt"),
            "statements": _statements(key.get("policy")),
        }
        for key in listed
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no access keys besides the admin key (agentcore server keys create --name NAME)")
    for row in rows:
        state = f"revoked {row['revoked']}" if row["revoked"] else "active"
        print(f"{row['accessKeyId']}  {row['principal']:<20} {state}, {row['statements']} policy statements")
    return 0


def _statements(policy: Any) -> int:
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    if isinstance(statements, dict):
        return 1  # a single statement may stand alone, without a list
    return len(statements) if isinstance(statements, list) else 0


def revoke_key(args: argparse.Namespace) -> int:
    from .remote import RemoteError

    try:
        revoked = _call("DELETE", f"{_PATH}/{quote(args.access_key_id, safe='')}")
    except RemoteError as error:
        if error.code == "ResourceNotFoundException":
            raise CliError(f"no access key {args.access_key_id}") from None
        raise
    print(f"revoked {revoked['accessKeyId']} of {revoked['principal']}")
    return 0


__all__ = ["add_commands"]
