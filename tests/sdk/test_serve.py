"""`app.run()`: where it listens and how it stops: `runtime/serve.py`."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from bedrock_agentcore.runtime.serve import resolve_host, resolve_port
from tests.conftest import AgentProcess, free_port, wait_until


def test_host_is_loopback_outside_a_container_and_all_interfaces_inside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.path.exists", lambda path: False)
    assert resolve_host(None, {}) == "127.0.0.1"
    assert resolve_host(None, {"DOCKER_CONTAINER": "1"}) == "0.0.0.0"
    assert resolve_host("10.1.2.3", {"DOCKER_CONTAINER": "1"}) == "10.1.2.3"
    monkeypatch.setattr("os.path.exists", lambda path: path == "/.dockerenv")
    assert resolve_host(None, {}) == "0.0.0.0"


def test_port_argument_then_port_variable_then_8080() -> None:
    assert resolve_port(None, {}) == 8080
    assert resolve_port(None, {"PORT": "9123"}) == 9123
    assert resolve_port(7000, {"PORT": "9123"}) == 7000


@pytest.mark.parametrize("bad", ["http", "-1", "70000"])
def test_a_malformed_port_variable_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="PORT"):
        resolve_port(None, {"PORT": bad})


def test_run_serves_on_the_port_variable(tmp_path: Path, agent_process: Any) -> None:
    script = tmp_path / "agent.py"
    script.write_text(
        textwrap.dedent(
            """
            from bedrock_agentcore import BedrockAgentCoreApp
            app = BedrockAgentCoreApp()

            @app.entrypoint
            def handler(payload):
                return {"hello": payload.get("name")}

            if __name__ == "__main__":
                app.run()
            """
        )
    )
    agent = agent_process(script)
    assert httpx.post(agent.url + "/invocations", json={"name": "Alice"}).json() == {"hello": "Alice"}


def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    script = tmp_path / "agent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time, pathlib
            from bedrock_agentcore import BedrockAgentCoreApp
            app = BedrockAgentCoreApp()

            @app.entrypoint
            def handler(payload):
                pathlib.Path({str(marker)!r}).write_text("yes")
                time.sleep(1.0)  # still working when SIGTERM arrives
                return "finished"

            if __name__ == "__main__":
                app.run()
            """
        )
    )
    agent = AgentProcess(script).wait_ready()
    replies: list[Any] = []
    caller = threading.Thread(
        target=lambda: replies.append(httpx.post(agent.url + "/invocations", json={}, timeout=20))
    )
    try:
        caller.start()
        wait_until(marker.exists, timeout=10)
        agent.process.send_signal(signal.SIGTERM)
        caller.join(20)
        assert agent.process.wait(20) == 0, agent.log()
    finally:
        agent.stop()
    assert replies and replies[0].status_code == 200 and replies[0].json() == "finished"


def test_a_busy_port_is_reported(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "agent.py"
    script.write_text(
        "import socket\nfrom bedrock_agentcore import BedrockAgentCoreApp\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen()\n"
        f"BedrockAgentCoreApp().run(port={port})\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "address already in use" in done.stderr.lower()
