"""`make demo`: the overview's workflow on this machine, with the `agentcore` command.

Starts the embedded runtime server, deploys examples/hello to it, invokes it (plain, twice in
one session, streaming, over a WebSocket), shows where the logs are, and stops the server. Runs
in a temporary AGENTCORE_HOME on a free port, so it leaves nothing behind and disturbs nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Demo:
    def __init__(self, root: Path) -> None:
        self.project = root / "hello"
        shutil.copytree(EXAMPLES / "hello", self.project)
        self.port = _free_port()
        self.environment = {
            **os.environ,
            "AGENTCORE_HOME": str(root / "home"),
            "AGENTCORE_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
        }

    def run(self, *args: str, quiet: bool = False) -> str:
        """Run `agentcore ARGS` as a user would, echo the command and what it printed."""
        print(f"\n$ agentcore {' '.join(_quote(arg) for arg in args)}", flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "open_agentcore.cli", *args], cwd=self.project, env=self.environment,
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if not quiet or done.returncode != 0:
            for line in done.stdout.rstrip().splitlines():
                print(f"  {line}")
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip() or f"agentcore {args[0]} failed")
        return done.stdout


def _quote(arg: str) -> str:
    return f"'{arg}'" if any(c in arg for c in ' {}"') else arg


def main() -> int:
    print("open-agentcore demo: a runtime server on this machine, an agent deployed to it, invoked")
    root = Path(tempfile.mkdtemp(prefix="oacd-", dir="/tmp"))  # short: unix socket paths are limited
    demo = Demo(root)
    try:
        demo.run("server", "start", "--port", str(demo.port))
        demo.run("configure", "--entrypoint", "agent.py", "--name", "hello", "--non-interactive")
        demo.run("deploy")
        demo.run("invoke", '{"name": "Alice"}')
        demo.run("invoke", '{"name": "Alice"}', "--session-id", "demo-session")
        demo.run("invoke", '{"name": "Bob"}', "--session-id", "demo-session")
        demo.run("invoke", '{"name": "Carol", "stream": true}')
        demo.run("invoke", '{"name": "Dave"}', "--ws")
        demo.run("status")
        print("\nMore: `agentcore logs --follow` tails a session's log; `agentcore server credentials`")
        print("prints the AWS_* variables that point boto3 at the server (see docs/server.md).")
    finally:
        demo.run("server", "stop", "--data-dir", str(root / "home" / "server"), quiet=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        print(f"demo failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None
