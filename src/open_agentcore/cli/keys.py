"""`agentcore server keys create|list|revoke`: access keys for principals other than the admin.

These act on the server's store directly (the data dir's SQLite, or `--store`), as an operator
on the server's machine does; a running server sees a change within a few seconds.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from open_agentcore.auth.credentials import new_access_key_id, new_secret_access_key
from open_agentcore.auth.policies import PolicyError, parse_policy
from open_agentcore.server import ServerConfig, agentcore_home

if TYPE_CHECKING:
    from open_agentcore.store import Store

from .errors import CliError

_PRINCIPAL = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")


def add_commands(server_commands: Any) -> None:
    keys = server_commands.add_parser(
        "keys",
        help="create, list and revoke access keys of other principals",
        description="Access keys for callers other than the admin. Each belongs to a principal "
        "(arn:aws:iam::<account>:user/<name> in policies) and carries an IAM-style policy: with "
        "none, the key may do nothing.",
        epilog="example: agentcore server keys create --name ci-bot --policy invoke-only.json",
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
    for command in (create, listing, revoke):
        command.add_argument("--data-dir", type=Path, help="server data dir (default $AGENTCORE_HOME/server)")
        command.add_argument("--store", help="database URL, when the server runs with --store")


def _store(args: argparse.Namespace) -> Store:
    from open_agentcore.store import Store, StoreError

    data_dir = Path(args.data_dir) if args.data_dir else agentcore_home() / "server"
    config = ServerConfig(data_dir=data_dir, store_url=args.store)
    if not args.store and not (data_dir / "state.db").exists():
        raise CliError(f"no runtime server state in {data_dir}: start the server once first")
    try:
        return Store.open(config.database_url)
    except StoreError as error:
        raise CliError(f"cannot open the server's store: {error}") from None


def create_key(args: argparse.Namespace) -> int:
    if not _PRINCIPAL.fullmatch(args.name):
        raise CliError("--name is 1-64 letters, digits or +=,.@_-")
    policy = None
    if args.policy is not None:
        try:
            text = args.policy.read_text()
        except OSError as error:
            raise CliError(f"cannot read {args.policy}: {error.strerror}") from None
        try:
            parse_policy(text)
        except PolicyError as error:
            raise CliError(f"{args.policy}: {error}") from None
        policy = json.loads(text)
    store = _store(args)
    key_id, secret = new_access_key_id(), new_secret_access_key()
    store.create_access_key(key_id, secret, args.name, policy)
    if args.json:
        print(json.dumps({"accessKeyId": key_id, "secretAccessKey": secret, "principal": args.name}))
    else:
        print(f"access key for {args.name} (the secret is shown this once):")
        print(f"export AWS_ACCESS_KEY_ID={key_id}")
        print(f"export AWS_SECRET_ACCESS_KEY={secret}")
        if policy is None:
            print("note: the key has no policy, so it may do nothing; create it again with --policy")
    return 0


def list_keys(args: argparse.Namespace) -> int:
    records = _store(args).list_access_keys(include_revoked=args.all)
    rows = [
        {
            "accessKeyId": r.access_key_id,
            "principal": r.principal,
            "created": r.created_at.isoformat(),
            "revoked": r.revoked_at.isoformat() if r.revoked_at else None,
            "statements": len((r.policy or {}).get("Statement", [])) if r.policy else 0,
        }
        for r in records
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


def revoke_key(args: argparse.Namespace) -> int:
    from open_agentcore.store import AccessKeyNotFound

    try:
        record = _store(args).revoke_access_key(args.access_key_id)
    except AccessKeyNotFound:
        raise CliError(f"no access key {args.access_key_id}") from None
    print(f"revoked {record.access_key_id} of {record.principal}")
    return 0


__all__ = ["add_commands"]
