"""Hot reload for `agentcore dev`: uvicorn's reloader serving the agent, restarted on every change.

Run BY PATH with the agent's interpreter, which has uvicorn and the SDK but maybe not open_agentcore:
    python reloader.py --launcher .../worker_main.py --code-dir DIR --entrypoint agent.py --port 8080
The supervisor holds the listening socket; each restart is a fresh process that imports the
entrypoint the way the worker launcher does. A change is any .py file under the code dir added,
removed or rewritten; virtualenvs, caches and hidden directories are not watched.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path
from socket import socket
from types import ModuleType
from typing import Any

import uvicorn
from uvicorn.supervisors.basereload import BaseReload

_SETTINGS = "AGENTCORE_DEV_SETTINGS"  # how each fresh server process finds the agent
_SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages"}
EXIT_START_FAILED = 3

Snapshot = dict[Path, tuple[int, int]]


def load_launcher(path: str) -> ModuleType:
    """The worker launcher module, loaded from its file (its package may not be importable here)."""
    spec = importlib.util.spec_from_file_location("agentcore_worker_main", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the worker launcher from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def agent_app() -> Any:
    """uvicorn's app factory, called in each fresh server process."""
    settings = json.loads(os.environ[_SETTINGS])
    launcher = load_launcher(settings["launcher"])
    launcher.die_with_parent()
    try:
        return launcher.find_app(launcher.load_entrypoint(Path(settings["code_dir"]), settings["entrypoint"]))
    except BaseException:  # the agent's own import-time failure, whatever it is: show it, then wait
        traceback.print_exc()
        print(
            "agentcore dev: the agent failed to load; save a fix and it reloads", file=sys.stderr, flush=True
        )
        sys.exit(EXIT_START_FAILED)


def python_files(root: Path) -> Snapshot:
    """(mtime, size) of every .py file under `root`, skipping virtualenvs, caches and dot-dirs."""
    found: Snapshot = {}
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [
            name
            for name in subdirs
            if not name.startswith(".")
            and name not in _SKIPPED_DIRS
            and not os.path.exists(os.path.join(directory, name, "pyvenv.cfg"))
        ]
        for name in files:
            if name.endswith(".py"):
                path = Path(directory, name)
                try:
                    stat = path.stat()
                except OSError:  # removed while we walked
                    continue
                found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


class ProjectReload(BaseReload):
    """Restarts the server process when `python_files(root)` changes (checked every reload_delay)."""

    def __init__(self, config: uvicorn.Config, target: Any, sockets: list[socket], root: Path) -> None:
        super().__init__(config, target, sockets)
        self.reloader_name = "agentcore dev"
        self.root = root
        self.snapshot = python_files(root)

    def should_restart(self) -> list[Path] | None:
        self.pause()
        current = python_files(self.root)
        changed = sorted(
            path
            for path in current.keys() | self.snapshot.keys()
            if current.get(path) != self.snapshot.get(path)
        )
        self.snapshot = current
        return changed or None


def main(argv: list[str] | None = None) -> int:
    # Run by path, this file's directory (the CLI package) heads sys.path, and its modules would
    # shadow top-level names such as `packaging` for the agent. Fresh server processes inherit it.
    here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if not entry or Path(entry).resolve() != here]
    parser = argparse.ArgumentParser(description="Serve an agent on a TCP port, restarting it on changes.")
    parser.add_argument("--launcher", required=True, help="path of open_agentcore's worker_main.py")
    parser.add_argument("--code-dir", type=Path, required=True)
    parser.add_argument("--entrypoint", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    code_dir = args.code_dir.resolve()
    os.environ[_SETTINGS] = json.dumps(
        {"launcher": args.launcher, "code_dir": str(code_dir), "entrypoint": args.entrypoint}
    )
    load_launcher(args.launcher).die_with_parent()
    config = uvicorn.Config(
        agent_app, factory=True, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    # What uvicorn.run does for reload=True, with our watcher: it wants an import string for the
    # app, and this file is not importable by name (the server process gets it as __main__).
    sock = config.bind_socket()
    ProjectReload(config, target=server.run, sockets=[sock], root=code_dir).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
