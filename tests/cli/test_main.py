"""`agentcore`'s entry point: what a command line imports, and the command table `--help` lists."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from open_agentcore.cli.main import COMMANDS, parser

# What made every command take 1.5 s: the server app, its store, the JWT stack, AWS's SDK.
HEAVY = (
    "sqlalchemy", "uvicorn", "starlette", "jwt", "cryptography", "botocore", "boto3", "httpx", "yaml",
    "pydantic", "bedrock_agentcore", "open_agentcore.server.app", "open_agentcore.store",
    "open_agentcore.backends", "open_agentcore.artifacts", "open_agentcore.auth.jwt_authorizer",
)  # fmt: skip

_IMPORTED = """
import json, sys
from open_agentcore.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def imported_by(*argv: str) -> set[str]:
    """The modules a real `agentcore ARGV` process has loaded when it is done."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED, *argv], capture_output=True, text=True, timeout=60, check=True
    )
    modules: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return set(modules)


def heavy_among(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("argv", [["--help"], ["--version"], []])
def test_help_and_version_import_nothing_heavy(argv: list[str]) -> None:
    modules = imported_by(*argv)
    assert "open_agentcore.cli.main" in modules  # the probe ran the real entry point
    assert heavy_among(modules) == []


def test_help_imports_no_command_module() -> None:
    modules = imported_by("--help")
    command_modules = {f"open_agentcore.cli.{module}" for module, _ in COMMANDS.values()}
    assert sorted(modules & command_modules) == []


@pytest.mark.parametrize("command", ["invoke", "deploy", "status", "server"])
def test_a_commands_help_imports_its_module_and_nothing_heavy(command: str) -> None:
    modules = imported_by(command, "--help")
    assert f"open_agentcore.cli.{COMMANDS[command][0]}" in modules
    assert "open_agentcore.cli.dev" not in modules  # a module no other command needs
    assert heavy_among(modules) == []


def test_the_listing_says_what_each_command_module_says() -> None:
    full = parser()  # every module imported: their own help texts
    commands = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    own_help = {choice.dest: choice.help for choice in commands._choices_actions}
    assert own_help == {name: summary for name, (_, summary) in COMMANDS.items()}


def test_endpoint_url_is_taken_before_and_after_the_command() -> None:
    before = parser(["--endpoint-url", "http://h:1", "status"]).parse_args(
        ["--endpoint-url", "http://h:1", "status"]
    )
    after = parser(["status", "--endpoint-url", "http://h:2"]).parse_args(
        ["status", "--endpoint-url", "http://h:2"]
    )
    neither = parser(["status"]).parse_args(["status"])
    assert (before.endpoint_url, after.endpoint_url, neither.endpoint_url) == (
        "http://h:1",
        "http://h:2",
        None,
    )
