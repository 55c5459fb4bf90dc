"""How long `agentcore` takes to do nothing and to invoke a warm agent, side by side.

Contenders: this checkout's CLI, a baseline checkout's CLI (`--baseline DIR`, using DIR/.venv),
and Amazon's starter toolkit CLI (`bedrock-agentcore-starter-toolkit` from PyPI, installed on
first run into benchmarks/.venvs/starter-toolkit; only --help and --version compare, since its
invoke talks to AWS). Rounds alternate between contenders; the table shows medians of wall time
per process and the ratio of each contender's median to ours.

The warm invoke goes to one runtime server of this checkout on a free port, hosting a hello
agent, through a session that was invoked once before timing starts. Bytecode is cached for
every contender (in benchmarks/.venvs/pycache), as it is after any real install.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
TOOLKIT_VENV = VENVS / "starter-toolkit"
RESULTS = HERE / "results"
HELLO = """
from bedrock_agentcore import BedrockAgentCoreApp

app = BedrockAgentCoreApp()


@app.entrypoint
def invoke(payload):
    return {"hello": payload.get("prompt", "world")}
"""
SESSION = "cli-start-benchmark-session-0001"


def toolkit_cli() -> Path:
    cli = TOOLKIT_VENV / "bin" / "agentcore"
    if not cli.exists():
        print(f"installing bedrock-agentcore-starter-toolkit into {TOOLKIT_VENV}...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TOOLKIT_VENV)], check=True)
        pip = [str(TOOLKIT_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "bedrock-agentcore-starter-toolkit"], check=True)
    return cli


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(home: Path, url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "AGENTCORE_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        AGENTCORE_HOME=str(home),
        AGENTCORE_ENDPOINT_URL=url,
        PYTHONPYCACHEPREFIX=str(VENVS / "pycache"),
        AWS_REGION="us-east-1",
    )
    return env


@contextlib.contextmanager
def hello_server(ours: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A runtime server of this checkout with the hello agent deployed; yields (project, env)."""
    root = Path(tempfile.mkdtemp(prefix="oacb-", dir="/tmp"))
    project, home = root / "project", root / "h"
    project.mkdir()
    (project / "hello.py").write_text(HELLO)
    env = _environment(home, f"http://127.0.0.1:{_free_port()}")

    def run(*args: str) -> str:
        done = subprocess.run([str(ours), *args], cwd=project, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"agentcore {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    try:
        run("configure", "--entrypoint", "hello.py", "--non-interactive")
        run("deploy")
        run("invoke", "warm", "--session-id", SESSION)
        yield project, env
    finally:
        subprocess.run([str(ours), "server", "stop"], cwd=project, env=env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _seconds(command: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace').strip()}")
    return elapsed


def measure(contenders: dict[str, Path], rounds: int) -> dict[str, dict[str, list[float]]]:
    """Seconds per run of each (contender, command), rounds interleaved across contenders."""
    ours = contenders["ours"]
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in contenders}
    with hello_server(ours) as (project, env):
        commands = {
            "--help": ["--help"],
            "--version": ["--version"],
            "warm invoke": ["invoke", "hi", "--session-id", SESSION],
        }
        for cli in contenders.values():  # caches bytecode: every contender starts warm
            _seconds([str(cli), "--help"], project, env)
        for number in range(rounds):
            order = list(contenders.items())
            if number % 2:
                order.reverse()
            for label, args in commands.items():
                for name, cli in order:
                    if name == "toolkit" and label == "warm invoke":
                        continue  # it invokes agents on AWS only
                    # The toolkit has no --version: it answers with a usage error, after the same start-up.
                    check = not (name == "toolkit" and label == "--version")
                    seconds = _seconds([str(cli), *args], project, env, check)
                    samples[name].setdefault(label, []).append(seconds)
    return samples


def render(samples: dict[str, dict[str, list[float]]], rounds: int) -> str:
    names = list(samples)
    labels = list(samples["ours"])
    header = "| command | " + " | ".join(f"{name} (ms)" for name in names)
    header += " | " + " | ".join(f"{name} / ours" for name in names if name != "ours") + " | target |"
    lines = [header, "|" + "---|" * (len(names) * 2 + 1)]
    targets = {"--help": 0.150, "--version": 0.150, "warm invoke": 0.300}
    for label in labels:
        medians = {name: statistics.median(samples[name][label]) for name in names if label in samples[name]}
        ours = medians["ours"]
        cells = [f"{medians[name] * 1000:.0f}" if name in medians else "n/a" for name in names]
        ratios = [
            f"{medians[name] / ours:.1f}×" if name in medians else "n/a" for name in names if name != "ours"
        ]
        verdict = "✓" if ours < targets[label] else "✗"
        lines.append(
            f"| agentcore {label} | {' | '.join(cells)} | {' | '.join(ratios)} | "
            f"< {targets[label] * 1000:.0f} ms {verdict} |"
        )
    note = "\ntoolkit --version: it has no such option and exits with a usage error (timed all the same).\n"
    note = note if "toolkit" in samples else ""
    return f"CLI start-up, medians of {rounds} interleaved rounds\n\n" + "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="a checkout to compare with (its .venv/bin/agentcore)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--no-toolkit", action="store_true", help="leave Amazon's starter toolkit out")
    settings = parser.parse_args(argv)
    contenders = {"ours": Path(sys.executable).parent / "agentcore"}
    if settings.baseline is not None:
        contenders["baseline"] = settings.baseline.resolve() / ".venv" / "bin" / "agentcore"
        if not contenders["baseline"].exists():
            raise SystemExit(f"no {contenders['baseline']}: give --baseline a checkout with its own .venv")
    if not settings.no_toolkit:
        contenders["toolkit"] = toolkit_cli()
    samples = measure(contenders, settings.rounds)
    table = render(samples, settings.rounds)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"cli-{stamp}.md").write_text(table)
    (RESULTS / f"cli-{stamp}.json").write_text(json.dumps(samples, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
