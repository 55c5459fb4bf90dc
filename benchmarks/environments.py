"""The Python environments under test: ours (the project's .venv) and the reference SDK's own venv."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REFERENCE_VENV = HERE / ".venvs" / "reference"


@dataclass(frozen=True)
class Environment:
    """A named interpreter that can import `bedrock_agentcore` (or only Starlette, for the baseline)."""

    name: str
    python: Path


def ours() -> Environment:
    return Environment("ours", Path(sys.executable))


def reference() -> Environment:
    """The reference SDK from PyPI in its own venv, with our uvicorn/starlette versions pinned."""
    python = REFERENCE_VENV / "bin" / "python"
    if not python.exists():
        print(
            f"creating {REFERENCE_VENV} with the reference SDK (bedrock-agentcore from PyPI)...", flush=True
        )
        subprocess.run([sys.executable, "-m", "venv", str(REFERENCE_VENV)], check=True)
        pins = [f"{name}=={metadata.version(name)}" for name in ("uvicorn", "starlette", "h11")]
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "bedrock-agentcore", *pins],
            check=True,
        )
    return Environment("reference", python)


def describe(environment: Environment) -> str:
    """`bedrock-agentcore x.y.z, uvicorn a.b.c` as installed in that environment."""
    code = (
        "from importlib import metadata as m\n"
        "names = ['bedrock-agentcore', 'open-agentcore', 'uvicorn', 'starlette']\n"
        "found = []\n"
        "for n in names:\n"
        "    try: found.append(f'{n} {m.version(n)}')\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(', '.join(found))\n"
    )
    done = subprocess.run([str(environment.python), "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()
