"""`agentcore server keys create|list|revoke` as a user runs them: a real CLI process against a real
server on a non-default port, over HTTP only. As root, the CLI runs as another user that cannot
see the server's data dir at all, which proves it never opens the store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import pytest

from tests.conftest import free_port
from tests.server.conftest import KEY_ID, SECRET, Server, running_server

NOBODY = 65534
# `setpriv` rather than subprocess's own user=: the interpreter may live under a root-only home,
# which setpriv's exec still reaches; what the CLI can read afterwards is checked below.
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
AS_ROOT = os.geteuid() == 0 and shutil.which("setpriv") is not None
EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass
class Cli:
    """Where the CLI runs: its own home (not the server's), and who it runs as."""

    home: Path
    server: Server

    def run(self, *args: str, key: tuple[str, str] = (KEY_ID, SECRET), url: str | None = None) -> Any:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
            "AGENTCORE_HOME": str(self.home / "agentcore"), "AGENTCORE_ENDPOINT_URL": url or self.server.url,
            "AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1],
        }  # fmt: skip
        return subprocess.run(
            [*(AS_NOBODY if AS_ROOT else []), sys.executable, "-m", "open_agentcore.cli", *args],
            cwd=self.home, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def keys(self, *args: str, **options: Any) -> Any:
        return self.run("server", "keys", *args, **options)

    def file(self, name: str, text: str) -> Path:
        path = self.home / name
        path.write_text(text)
        path.chmod(0o644)
        return path


@pytest.fixture
def cli() -> Iterator[Cli]:
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="oacs-", dir="/tmp"))
    home = Path(tempfile.mkdtemp(prefix="oack-", dir="/tmp"))
    if AS_ROOT:
        os.chown(home, NOBODY, NOBODY)
    try:
        with running_server(data_dir) as server:
            yield Cli(home, server)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def created(done: Any) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def control(server: Server, key: tuple[str, str]) -> Any:
    return boto3.client(
        "bedrock-agentcore-control", region_name="us-east-1", endpoint_url=server.url,
        aws_access_key_id=key[0], aws_secret_access_key=key[1],
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )  # fmt: skip


@pytest.mark.skipif(not AS_ROOT, reason="needs root to run the CLI as a user who cannot see the data dir")
def test_the_cli_cannot_read_the_servers_data_dir(cli: Cli) -> None:
    """The premise of the tests below: nothing of the store is within the CLI's reach."""
    for path in (cli.server.data_dir, cli.server.data_dir / "state.db"):
        done = subprocess.run(
            [*AS_NOBODY, sys.executable, "-c", f"import os; os.stat({str(path)!r}); open({str(path)!r})"],
            cwd=cli.home, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode != 0 and "PermissionError" in done.stderr, done.stderr
    assert cli.server.url.rsplit(":", 1)[1] != "8900"


def test_create_list_and_revoke_over_http(cli: Cli) -> None:
    policy = cli.file("policy.json", json.dumps(EVERYTHING))
    made = created(cli.keys("create", "--name", "ci-bot", "--policy", str(policy), "--json"))
    assert set(made) == {"accessKeyId", "secretAccessKey", "principal"} and made["principal"] == "ci-bot"
    key = (made["accessKeyId"], made["secretAccessKey"])
    assert control(cli.server, key).list_agent_runtimes()["agentRuntimes"] == []

    listed = cli.keys("list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["accessKeyId"], r["principal"], r["revoked"], r["statements"]) for r in rows] == [
        (key[0], "ci-bot", None, 1)
    ]
    assert key[1] not in listed.stdout
    text = cli.keys("list")
    assert (
        text.returncode == 0
        and f"{key[0]}  ci-bot" in text.stdout
        and "active, 1 policy statements" in text.stdout
    )

    revoked = cli.keys("revoke", key[0])
    assert (revoked.returncode, revoked.stdout) == (0, f"revoked {key[0]} of ci-bot\n")
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        control(cli.server, key).list_agent_runtimes()
    assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert json.loads(cli.keys("list", "--json").stdout) == []
    every = json.loads(cli.keys("list", "--all", "--json").stdout)
    assert [r["accessKeyId"] for r in every] == [key[0]] and every[0]["revoked"]


def test_create_prints_export_lines_and_warns_of_a_key_without_policy(cli: Cli) -> None:
    done = cli.keys("create", "--name", "bare")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "access key for bare (the secret is shown this once):"
    assert lines[1].startswith("export AWS_ACCESS_KEY_ID=AKIA")
    assert lines[2].startswith("export AWS_SECRET_ACCESS_KEY=") and len(lines[2].split("=", 1)[1]) == 40
    assert "may do nothing" in lines[3]


def test_revoking_an_unknown_key_is_one_line(cli: Cli) -> None:
    done = cli.keys("revoke", "AKIANOSUCHKEY0000000")
    assert (done.returncode, done.stderr) == (1, "agentcore: no access key AKIANOSUCHKEY0000000\n")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"Statement": [{"Effect": "Maybe", "Action": "*"}]}', "Statement[0].Effect must be Allow or Deny"),
        ("{not json", "the policy is not JSON"),
        ('{"Statement": [{"Effect": "Allow", "Action": "*", "Principal": "*"}]}', "has no Principal"),
    ],
)
def test_a_policy_file_that_is_refused_is_one_line_naming_the_file(cli: Cli, text: str, says: str) -> None:
    policy = cli.file("policy.json", text)
    done = cli.keys("create", "--name", "p", "--policy", str(policy))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(f"agentcore: {policy}: ") and says in done.stderr
    assert done.stderr.count("\n") == 1
    assert json.loads(cli.keys("list", "--all", "--json").stdout) == []


def test_a_bad_name_is_the_servers_validation_error(cli: Cli) -> None:
    for name in ("a/b", "admin"):
        done = cli.keys("create", "--name", name)
        assert done.returncode == 1 and done.stderr.startswith("agentcore: ValidationException: principal")
        assert done.stderr.count("\n") == 1


def test_a_key_other_than_the_admins_is_refused_on_every_command(cli: Cli) -> None:
    policy = cli.file("everything.json", json.dumps(EVERYTHING))
    made = created(cli.keys("create", "--name", "almighty", "--policy", str(policy), "--json"))
    key = (made["accessKeyId"], made["secretAccessKey"])
    for command in (["list"], ["create", "--name", "minted"], ["revoke", key[0]]):
        done = cli.keys(*command, key=key)
        assert done.returncode == 1, command
        assert done.stderr.startswith("agentcore: AccessDeniedException: "), done.stderr
    listed = json.loads(cli.keys("list", "--all", "--json").stdout)
    assert [(r["principal"], r["revoked"]) for r in listed] == [("almighty", None)]


def test_no_server_at_the_endpoint_is_one_line(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = cli.keys("list", url=url)
    assert done.returncode == 1 and done.stderr.startswith(f"agentcore: no runtime server answers at {url}")


def test_help_says_how_the_server_is_found_and_offers_no_data_dir(cli: Cli) -> None:
    for command in ([], ["create"], ["list"], ["revoke"]):
        helped = cli.keys(*command, "--help")
        assert helped.returncode == 0 and "usage: agentcore server keys" in helped.stdout
        assert "--data-dir" not in helped.stdout and "--store" not in helped.stdout
    assert "AGENTCORE_ENDPOINT_URL" in cli.keys("--help").stdout
