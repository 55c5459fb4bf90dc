"""Worker environments: a virtualenv per distinct set of requirements, built with uv and cached.

An agent with no requirements runs on the server's own interpreter, which has the SDK. Otherwise
its `requirements.txt` (or `pyproject.toml`) is installed into a venv keyed by the hash of its
inputs, and our `bedrock_agentcore` is layered in through a `.pth` file so it imports even when the
agent does not list it. An agent that lists Amazon's `bedrock-agentcore` gets that package instead:
the worker contract is HTTP, so either SDK serves it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import bedrock_agentcore

from .interpreters import Interpreter, find_interpreter
from .storage import ArtifactError

SDK_DEPENDENCIES = ("starlette", "uvicorn", "websockets", "anyio")
_REFERENCE_SDK = re.compile(r"^\s*bedrock[-_.]agentcore\b(?![-_.]starter)", re.I | re.M)
_ERROR_LINE = re.compile(r"(error|not found|no solution|because|failed|no matching)", re.I)


class BuildFailed(ArtifactError):
    """Installing the agent's requirements failed; `reason` quotes the failing output."""

    def __init__(self, reason: str, log_path: Path) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_path = log_path


@dataclass(frozen=True)
class BuiltEnvironment:
    """An interpreter ready to run the agent's worker."""

    python: Path
    env_hash: str
    root: Path | None
    # True when this call built it; False when it was cached or is the server's own interpreter.
    fresh: bool = False


def requirements_file(code_dir: Path) -> Path | None:
    """`requirements.txt`, else `pyproject.toml`, else None."""
    for name in ("requirements.txt", "pyproject.toml"):
        if (code_dir / name).is_file():
            return code_dir / name
    return None


def _uv() -> str:
    import uv

    return str(uv.find_uv_bin())


def _sdk_fingerprint() -> str:
    digest = hashlib.sha256()
    package = Path(bedrock_agentcore.__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class EnvironmentBuilder:
    """Builds and caches worker environments under `cache_root` (blocking: call it from a thread)."""

    def __init__(
        self,
        cache_root: Path,
        python: Path = Path(sys.executable),
        timeout: float = 900.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.cache_root = cache_root
        self.python = python
        self.timeout = timeout
        self.environ = dict(environ if environ is not None else os.environ)
        self._sdk = _sdk_fingerprint()

    def build(self, code_dir: Path, log_path: Path, python: Path | None = None) -> BuiltEnvironment:
        """The environment for this code: cached, or built now with its log in `log_path`.

        `python`: build on that interpreter instead of the server's own; the environment then
        gets the SDK's dependencies even when the code lists no requirements.
        """
        requirements = requirements_file(code_dir)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if requirements is None and python is None:
            log_path.write_text("no requirements.txt or pyproject.toml: using the server's interpreter\n")
            return BuiltEnvironment(self.python, "base", None)
        text = requirements.read_text(errors="replace") if requirements is not None else ""
        name = requirements.name if requirements is not None else "(no requirements)"
        # The interpreter joins the hash only when chosen, so environments cached before still match.
        chosen = [str(python)] if python is not None else []
        env_hash = hashlib.sha256(
            "\n".join([name, text, sys.version, self._sdk, *chosen]).encode()
        ).hexdigest()[:24]
        root = self.cache_root / "envs" / env_hash
        lock_path = self.cache_root / "envs" / f".{env_hash}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build per hash; the others wait and reuse it
            fresh = not (root / "bin" / "python").exists()
            if fresh:
                reference_sdk = _REFERENCE_SDK.search(text) is not None
                self._build(requirements, reference_sdk, python or self.python, root, log_path)
            else:
                log_path.write_text(f"environment {env_hash} is cached\n")
        return BuiltEnvironment(root / "bin" / "python", env_hash, root, fresh)

    def _build(
        self, requirements: Path | None, reference_sdk: bool, python: Path, root: Path, log_path: Path
    ) -> None:
        staging = root.with_name(f".{root.name}.{secrets.token_hex(4)}")
        with log_path.open("w") as log:
            try:
                self._run(log, log_path, "venv", "--python", str(python), str(staging))
                staged_python = str(staging / "bin" / "python")
                if requirements is not None:
                    self._run(
                        log, log_path, "pip", "install", "--python", staged_python, "-r", str(requirements)
                    )
                if not reference_sdk:
                    self._run(log, log_path, "pip", "install", "--python", staged_python, *SDK_DEPENDENCIES)
                    self._layer_sdk(staging)
                os.replace(staging, root)
                log.write(f"environment ready: {root}\n")
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    def interpreter(self, runtime: str) -> Interpreter:
        """The interpreter a version's `runtime` (PYTHON_3_12, ...) names. Raises `InterpreterUnavailable`."""
        return find_interpreter(runtime, _uv(), self.environ)

    def _layer_sdk(self, venv: Path) -> None:
        layer = self.cache_root / "sdk" / self._sdk
        if not layer.exists():
            staging = layer.with_name(f".{layer.name}.{secrets.token_hex(4)}")
            shutil.copytree(Path(bedrock_agentcore.__file__).parent, staging / "bedrock_agentcore")
            os.replace(staging, layer)
        for site in venv.glob("lib/python*/site-packages"):
            (site / "open_agentcore_sdk.pth").write_text(str(layer) + "\n")

    def _run(self, log: TextIO, log_path: Path, *args: str) -> None:
        command = [_uv(), *args]
        environment = {**self.environ, "UV_CACHE_DIR": str(self.cache_root / "uv-cache"), "NO_COLOR": "1"}
        log.write(f"$ uv {' '.join(args)}\n")
        log.flush()
        try:
            done = subprocess.run(  # noqa: S603 - arguments built here, not from a shell
                command, capture_output=True, text=True, timeout=self.timeout, env=environment
            )
        except subprocess.TimeoutExpired:
            raise BuildFailed(f"uv {args[0]} took longer than {self.timeout:g}s", log_path) from None
        log.write(done.stdout + done.stderr)
        log.flush()
        if done.returncode != 0:
            raise BuildFailed(_reason(done.stderr or done.stdout), log_path)


def _reason(output: str) -> str:
    """The most telling lines of a failed uv run."""
    decorations = " \u00d7\u2570\u2500\u25b6"  # uv's tree drawing around its messages
    lines = [line.strip(decorations).strip() for line in output.splitlines() if line.strip()]
    telling = [line for line in lines if _ERROR_LINE.search(line)]
    return " ".join((telling or lines or ["uv failed without output"])[:3])[:500]


__all__ = ["SDK_DEPENDENCIES", "BuildFailed", "BuiltEnvironment", "EnvironmentBuilder", "requirements_file"]
