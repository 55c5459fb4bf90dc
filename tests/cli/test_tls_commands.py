"""`agentcore server start --tls-cert/--tls-key` and the CLI over HTTPS, as a user runs them: real
processes, certificates made for the test, boto3 and the CLI verifying them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.conftest import free_port
from tests.tls_certificates import Certificates, issue

AGENT = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload, context):
    return {"message": f"Hello, {payload.get('name', 'world')}!"}
"""
LIST_RUNTIMES = (
    "import boto3; "
    "print(len(boto3.client('bedrock-agentcore-control').list_agent_runtimes()['agentRuntimes']))"
)


def agentcore(
    home: Path, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "AGENTCORE_HOME": str(home)}
    for name in ("AGENTCORE_ADMIN_ACCESS_KEY_ID", "AGENTCORE_ADMIN_SECRET_ACCESS_KEY", "AGENTCORE_CA_BUNDLE"):
        environment.pop(name, None)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "open_agentcore.cli", *args], cwd=cwd, env=environment,
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("agentcore: "), done.stderr
    return lines[0]


def exports(home: Path, port: int) -> dict[str, str]:
    printed = agentcore(home, "server", "credentials", "--port", str(port))
    assert printed.returncode == 0, printed.stderr
    return dict(line.removeprefix("export ").split("=", 1) for line in printed.stdout.splitlines())


@pytest.fixture
def home() -> Iterator[Path]:
    # Short: worker sockets live under the data dir, and unix socket paths max out at 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="oact-", dir="/tmp"))
    (path / "certs").mkdir()
    yield path
    pid_file = path / "server" / "server.pid"
    if pid_file.exists():
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def certificates(home: Path) -> Certificates:
    return issue(home / "certs")


def test_a_self_signed_server_prints_https_and_its_credentials_trust_the_certificate(
    home: Path, certificates: Certificates
) -> None:
    port = free_port()
    started = agentcore(
        home, "server", "start", "--port", str(port), "--warm-pool", "0",
        "--tls-cert", str(certificates.self_signed), "--tls-key", str(certificates.self_signed_key),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert f"running at https://127.0.0.1:{port}" in started.stdout
    status = agentcore(home, "server", "status", "--port", str(port))
    assert status.returncode == 0 and f"running at https://127.0.0.1:{port}" in status.stdout

    exported = exports(home, port)
    assert exported["AWS_ENDPOINT_URL"] == exported["AGENTCORE_ENDPOINT_URL"] == f"https://127.0.0.1:{port}"
    assert exported["AWS_CA_BUNDLE"] == exported["AGENTCORE_CA_BUNDLE"] == str(certificates.self_signed)
    # boto3 as after `eval "$(agentcore server credentials)"`: nothing but the environment.
    environment = {**os.environ, **exported}
    listed = subprocess.run(
        [sys.executable, "-c", LIST_RUNTIMES], env=environment, capture_output=True, text=True, timeout=60
    )
    assert (listed.returncode, listed.stdout.strip()) == (0, "0"), listed.stderr

    # The CLI with nothing in its environment: the recorded server, its certificate as the pin.
    assert f"running at https://127.0.0.1:{port}" in agentcore(home, "server", "status").stdout
    project = home / "project"
    project.mkdir()
    (project / "greeter.py").write_text(AGENT)
    assert agentcore(home, "configure", "-e", "greeter.py", "-y", cwd=project).returncode == 0
    deployed = agentcore(home, "deploy", cwd=project)
    assert deployed.returncode == 0 and f"uploading to https://127.0.0.1:{port}" in deployed.stdout, (
        deployed.stdout + deployed.stderr
    )
    invoked = agentcore(home, "invoke", '{"name": "pin"}', cwd=project)
    assert json.loads(invoked.stdout) == {"message": "Hello, pin!"}, invoked.stderr

    stopped = agentcore(home, "server", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr


def test_the_cli_deploys_and_invokes_over_https_trusting_agentcore_ca_bundle(
    home: Path, certificates: Certificates
) -> None:
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    started = agentcore(
        home, "server", "start", "--port", str(port), "--warm-pool", "0",
        "--tls-cert", str(certificates.cert), "--tls-key", str(certificates.key),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    printed = agentcore(home, "server", "credentials", "--port", str(port))
    assert "AWS_CA_BUNDLE" not in printed.stdout, "a CA-issued certificate is no CA bundle"
    assert f"export AGENTCORE_ENDPOINT_URL={url}" in printed.stdout and "CA-issued" in printed.stderr

    project = home / "project"
    project.mkdir()
    (project / "greeter.py").write_text(AGENT)
    trusting = {"AGENTCORE_ENDPOINT_URL": url, "AGENTCORE_CA_BUNDLE": str(certificates.ca)}
    configured = agentcore(home, "configure", "--entrypoint", "greeter.py", "--non-interactive", cwd=project)
    assert configured.returncode == 0, configured.stderr
    deployed = agentcore(home, "deploy", cwd=project, env=trusting)
    assert deployed.returncode == 0 and "is READY" in deployed.stdout, deployed.stdout + deployed.stderr
    invoked = agentcore(home, "invoke", '{"name": "TLS"}', cwd=project, env=trusting)
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout) == {"message": "Hello, TLS!"}

    # The system's CAs never heard of the test CA.
    untrusting = agentcore(
        home, "invoke", '{"name": "TLS"}', cwd=project, env={"AGENTCORE_ENDPOINT_URL": url}
    )
    assert one_line_error(untrusting).startswith(f"agentcore: cannot verify the TLS certificate of {url}")
    missing = str(home / "no-such-ca.pem")
    wrong = agentcore(
        home, "invoke", "{}", cwd=project, env={"AGENTCORE_ENDPOINT_URL": url, "AGENTCORE_CA_BUNDLE": missing}
    )
    assert one_line_error(wrong).startswith(f"agentcore: cannot use AGENTCORE_CA_BUNDLE={missing}")
    assert agentcore(home, "server", "stop").returncode == 0
    # Deploying starts a stopped local server, but not a TLS one: the hint names the command that
    # starts it again as it was (its port, certificate and key, recorded when it ran).
    down = agentcore(home, "deploy", cwd=project, env=trusting)
    assert one_line_error(down) == (
        f"agentcore: no runtime server answers at {url} (start it: agentcore server start --port {port} "
        f"--tls-cert {certificates.cert.resolve()} --tls-key {certificates.key.resolve()})"
    )


@pytest.mark.parametrize("command", ["run", "start"])
def test_unusable_tls_files_fail_in_one_line_before_anything_starts(
    command: str, home: Path, certificates: Certificates
) -> None:
    encrypted = home / "certs" / "encrypted.key"
    key = serialization.load_pem_private_key(certificates.key.read_bytes(), None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    cert, missing = str(certificates.cert), str(home / "certs" / "missing.pem")
    cases = {
        (missing, str(certificates.key)): f"the TLS certificate file {missing} does not exist",
        (cert, str(certificates.stray_key)): f"the TLS key {certificates.stray_key} does not match",
        (cert, str(home / "certs")): f"cannot read the TLS key file {home / 'certs'}: Is a directory",
        (cert, str(encrypted)): f"the TLS key {encrypted} is encrypted",
        (str(certificates.key), str(certificates.key)): "holds no PEM certificate",
    }
    port = str(free_port())
    for (tls_cert, tls_key), reason in cases.items():
        failed = agentcore(
            home, "server", command, "--port", port, "--tls-cert", tls_cert, "--tls-key", tls_key, timeout=60
        )
        assert reason in one_line_error(failed)
    alone = agentcore(home, "server", command, "--port", port, "--tls-cert", cert, timeout=60)
    assert one_line_error(alone) == "agentcore: --tls-cert and --tls-key go together"
    assert not (home / "server" / "server.pid").exists()
