"""The baseline tree a benchmark compares this checkout with: a directory, or a fixed commit.

`BASELINE=DIR` (`--baseline DIR`) names a checkout that has its own `.venv`. Without it, the
fixed commit below is checked out once into a git worktree under `benchmarks/.venvs/` (git-ignored)
with its own `.venv` built by that tree's own Makefile, and reused by later runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent

# "Today's code" for issue 13 (speed and density): main before any of that work was
# merged. Move it only together with the table, or the "baseline" column changes meaning.
BASELINE_COMMIT = "8d5f6dedf9aff0deb72d33303f048db06ae88e69"

_READY = Path(".venv") / ".installed-dev"


def python_of(checkout: Path) -> Path:
    """The interpreter of a checkout's own `.venv`."""
    return checkout / ".venv" / "bin" / "python"


def checkout_of(directory: str | None, commit: str = BASELINE_COMMIT) -> Path:
    """`directory` when given (it must have a `.venv`), else the cached worktree of `commit`."""
    if directory:
        checkout = Path(directory).resolve()
        if not python_of(checkout).exists():
            raise SystemExit(f"baseline {checkout} has no .venv: run `make .venv/.installed-dev` there first")
        return checkout
    return _worktree(commit)


def _worktree(commit: str) -> Path:
    checkout = HERE / ".venvs" / f"baseline-{commit[:7]}"
    if (checkout / _READY).exists():
        return checkout
    if not (checkout / ".git").exists():
        _say(f"baseline: checking out {commit[:7]} into {checkout} (once; reused by later runs)...")
        checkout.parent.mkdir(parents=True, exist_ok=True)
        _git("worktree", "prune")
        _git("worktree", "add", "--detach", str(checkout), commit)
    _say(f"baseline: building its .venv with `make {_READY}` (a minute or two, once)...")
    subprocess.run(["make", str(_READY)], cwd=checkout, check=True)
    _say("baseline: ready")
    return checkout


def _git(*args: str) -> None:
    subprocess.run(["git", *args], cwd=REPOSITORY, check=True, stdout=subprocess.DEVNULL)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
