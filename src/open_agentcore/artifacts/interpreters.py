"""Which Python a version runs on: the one its `codeConfiguration.runtime` names, found on this host.

`PYTHON_3_12` means Python 3.12. It is looked for as `python3.12` on the server's PATH and then
with `uv python find` (interpreters uv installed, without downloading any); each candidate is run
once to confirm its version, since a shim (pyenv's) may exist for a version it cannot start.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .storage import ArtifactError

_PYTHON_RUNTIME = re.compile(r"^PYTHON_3_(\d{1,2})$")
_CHECK_TIMEOUT = 20.0


class InterpreterUnavailable(ArtifactError):
    """The Python a version asks for is not on this host; `version` is None when it is no Python."""

    def __init__(self, message: str, version: str | None = None) -> None:
        super().__init__(message)
        self.version = version


@dataclass(frozen=True)
class Interpreter:
    """A Python to build a version's environment with; `is_server` when it is the server's own."""

    path: Path
    version: str
    is_server: bool


def server_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def requested_version(runtime: str) -> str:
    """`PYTHON_3_12` → "3.12"; raises `InterpreterUnavailable` for anything that is not Python."""
    match = _PYTHON_RUNTIME.match(runtime)
    if match is None:
        raise InterpreterUnavailable(
            f"runtime {runtime} is not served here: this server runs Python agents "
            "(PYTHON_3_10 to PYTHON_3_14)"
        )
    return f"3.{match.group(1)}"


def _reports(path: Path, version: str, environ: Mapping[str, str]) -> bool:
    """Whether `path` runs and is Python `version`."""
    code = "import sys; print('%d.%d' % sys.version_info[:2])"
    try:
        done = subprocess.run(  # noqa: S603 - a path we found, no shell
            [str(path), "-c", code], capture_output=True, text=True, timeout=_CHECK_TIMEOUT, env=dict(environ)
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == version


def _on_path(version: str, environ: Mapping[str, str]) -> list[Path]:
    found = []
    for directory in environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / f"python{version}"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found.append(candidate)
    return found


def _from_uv(uv: str, version: str, environ: Mapping[str, str]) -> list[Path]:
    try:
        done = subprocess.run(  # noqa: S603 - uv's own binary, no shell
            [uv, "python", "find", "--no-python-downloads", version],
            capture_output=True, text=True, timeout=_CHECK_TIMEOUT, env={**environ, "NO_COLOR": "1"},
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return []
    line = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    return [Path(line[0])] if line else []


def find_interpreter(runtime: str, uv: str, environ: Mapping[str, str]) -> Interpreter:
    """The interpreter for `runtime` (e.g. PYTHON_3_12). Raises `InterpreterUnavailable`, naming it
    and how to provide it."""
    version = requested_version(runtime)
    if version == server_version():
        return Interpreter(Path(sys.executable), version, True)
    for candidate in [*_on_path(version, environ), *_from_uv(uv, version, environ)]:
        if _reports(candidate, version, environ):
            return Interpreter(candidate, version, False)
    raise InterpreterUnavailable(
        f"runtime {runtime} needs Python {version}, which this server cannot find (it runs on "
        f"Python {server_version()}): put python{version} on the server's PATH or run `uv python "
        f"install {version}`, then update the runtime; or start the server with --allow-host-python "
        f"to run such versions on Python {server_version()}",
        version,
    )


__all__ = ["Interpreter", "InterpreterUnavailable", "find_interpreter", "requested_version", "server_version"]
