"""The OCI bundle of a gVisor worker: its `config.json` and the root it starts in.

The root is a directory of this bundle, not the host's `/` with holes punched in it: it holds
only mount points, the merged-/usr links and copies of the few /etc files of `system_root.py`
(with a passwd naming the worker's user), all root's, and a world-writable `/tmp`. runsc lays it
under an overlay in the sandbox's memory (`--overlay2=root:memory`, see `gvisor.py`): the host's
copy is never written, and what the agent writes to `/tmp` stays in its sandbox's memory (counted
against its memory limit). Elsewhere in the root the agent, owning nothing, can write nothing.
Mounted over it: the system dirs and the `SandboxView`'s paths read-only, its home, tmp and socket
dir read-write, gVisor's own `/proc`, `/dev` and `/sys`, and a private `/dev/shm`.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import system_root
from .sandbox import SandboxView
from .system_root import Kind, outermost, within

OCI_VERSION = "1.0.2"
ROOTFS = "rootfs"
_RLIM_INFINITY = 2**64 - 1  # how OCI writes "unlimited"
# gVisor makes its own /dev (null, zero, random, urandom, full, tty, ptmx, pts) and /sys.
_MOUNT_POINTS = ("/proc", "/dev", "/sys")
_NAMESPACES = ("pid", "ipc", "uts", "mount")


@dataclass(frozen=True)
class Process:
    """What runs in the sandbox: its command, environment, user (uid = gid) and rlimits.

    `rlimits` maps OCI names (`RLIMIT_AS`) to a value used as both soft and hard limit; the file
    descriptor limit is the server's own unless given.
    """

    args: Sequence[str]
    environment: Mapping[str, str]
    uid: int
    cwd: Path
    rlimits: Mapping[str, int] = field(default_factory=dict)


def write(bundle: Path, view: SandboxView, process: Process, *, own_network: bool) -> Path:
    """Make `bundle` (0700): its `config.json` and its root. Returns the path of `config.json`.

    `own_network`: the sandbox gets a network namespace of its own (runsc `--network=none`);
    without it, runsc's `--network=host` has the sandbox use the host's network stack.
    """
    bundle.mkdir(mode=0o700, parents=True, exist_ok=False)
    root = bundle / ROOTFS
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    for point in _MOUNT_POINTS:
        _mount_point(root, Path(point))
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)  # like the host's: anyone may make files there, each keeps its own
    # multiprocessing's semaphores live in /dev/shm, which gVisor makes writable by root only.
    shared_memory = ["nosuid", "nodev", "mode=1777"]
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "tmpfs", "options": shared_memory},  # noqa: S108
    ]
    for entry in system_root.entries():
        _mount_point(root, entry.path.parent)
        if entry.kind is Kind.BIND:
            _mount_point(root, entry.path)
            mounts.append(_bind(Path(entry.source), entry.path, writable=False))
        elif entry.kind is Kind.LINK:
            os.symlink(entry.source, _inside(root, entry.path))
        else:
            try:
                _copy_in(root, entry.path, Path(entry.source).read_bytes())
            except OSError:
                continue  # gone since, or not readable: the sandbox goes without it
    _copy_in(root, Path("/etc/passwd"), system_root.passwd(process.uid, view.home))
    _copy_in(root, Path("/etc/group"), system_root.group(process.uid))
    for path, writable in _view_paths(view):
        _mount_point(root, path)
        mounts.append(_bind(path, path, writable))
    config = _config(process, mounts, own_network)
    config_path = bundle / "config.json"
    descriptor = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(config, file, indent=1)
    return config_path


def remove(bundle: Path) -> None:
    """Delete a bundle made by `write` (nothing of the worker's own is in it)."""
    shutil.rmtree(bundle, ignore_errors=True)


def _config(process: Process, mounts: list[dict[str, Any]], own_network: bool) -> dict[str, Any]:
    namespaces = [*_NAMESPACES, "network"] if own_network else list(_NAMESPACES)
    nofile_soft, nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    rlimits = {"RLIMIT_NOFILE": (nofile_soft, nofile_hard)}
    rlimits.update({name: (value, value) for name, value in process.rlimits.items()})
    no_capabilities: dict[str, list[str]] = {
        name: [] for name in ("bounding", "effective", "inheritable", "permitted", "ambient")
    }
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": process.uid, "gid": process.uid, "additionalGids": []},
            "args": list(process.args),
            "env": [f"{name}={value}" for name, value in process.environment.items()],
            "cwd": str(process.cwd),
            "capabilities": no_capabilities,
            "noNewPrivileges": True,
            "rlimits": [
                {"type": name, "soft": _oci_limit(soft), "hard": _oci_limit(hard)}
                for name, (soft, hard) in rlimits.items()
            ],
        },
        # Writable only through the overlay in memory: the host's copy is never written.
        "root": {"path": ROOTFS, "readonly": False},
        "hostname": "localhost",
        "mounts": mounts,
        "linux": {"namespaces": [{"type": name} for name in namespaces]},
    }


def _view_paths(view: SandboxView) -> list[tuple[Path, bool]]:
    """The view's paths to mount, each once, parents before children."""
    read_only = outermost(view.read_only)
    writable = [path for path in outermost(view.writable) if not any(within(path, r) for r in read_only)]
    return sorted([*((path, False) for path in read_only), *((path, True) for path in writable)])


def _bind(source: Path, destination: Path, writable: bool) -> dict[str, Any]:
    options = ["rbind", "rw" if writable else "ro", "nosuid", "nodev"]
    return {"destination": str(destination), "type": "bind", "source": str(source), "options": options}


def _inside(root: Path, path: Path) -> Path:
    return root / path.relative_to("/")


def _mount_point(root: Path, path: Path) -> None:
    """`path` and its parents as directories of the root, root's and 0755: the worker's uid must
    pass through them (gVisor would make missing ones 0777)."""
    for directory in [*reversed(path.parents), path]:
        inside = _inside(root, directory)
        if not inside.is_dir():
            inside.mkdir(mode=0o755)
            inside.chmod(0o755)  # whatever the umask


def _copy_in(root: Path, path: Path, data: bytes) -> None:
    _mount_point(root, path.parent)
    target = _inside(root, path)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _oci_limit(value: int) -> int:
    return _RLIM_INFINITY if value < 0 else value


__all__ = ["OCI_VERSION", "ROOTFS", "Process", "remove", "write"]
