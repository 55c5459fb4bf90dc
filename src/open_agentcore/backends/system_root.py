"""What of the host's system a sandboxed worker sees, whichever sandbox shows it: read-only `/usr`,
the merged-/usr links, the few `/etc` files and dirs the C library, Python, TLS and DNS read, and
a synthesised passwd and group naming the worker's user. Never keys, shadow or the host's users.

`sandbox.py` (bubblewrap) and `oci_bundle.py` (gVisor) each build their root from `entries()`.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Top-level names that merged-/usr systems make links into /usr, bound read-only elsewhere.
SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# What of /etc a worker reads: the dynamic loader's cache, name service (users come from the
# synthesised passwd), DNS, time zones, TLS trust stores (Debian and Red Hat layouts), MIME types and
# alternatives (links that programs in /usr/bin go through). Files are copied into the sandbox at
# each start (fresh: resolv.conf and hosts may change while the server runs); directories are bound.
ETC_FILES = (
    "ld.so.cache", "nsswitch.conf", "host.conf", "hosts", "resolv.conf", "gai.conf", "services",
    "protocols", "localtime", "timezone", "ssl/openssl.cnf", "pki/tls/openssl.cnf", "mime.types",
    "os-release",
)  # fmt: skip
ETC_DIRECTORIES = ("ssl/certs", "pki/tls/certs", "pki/ca-trust", "crypto-policies", "alternatives")


class Kind(enum.Enum):
    """How an entry of the system root is shown."""

    BIND = "bind"  # the host directory `source`, read-only
    LINK = "link"  # a symbolic link whose target is `source`
    COPY = "copy"  # a read-only copy of the host file `source`, read at each start


@dataclass(frozen=True)
class Entry:
    """One path of the system root, at `path` in the sandbox."""

    path: Path
    kind: Kind
    source: str


def entries(etc: Path = Path("/etc")) -> list[Entry]:
    """The system root of this host, parents before children: `/usr`, the merged-/usr links (or
    the directories, where they are not links), and the /etc entries that exist here."""
    found = [Entry(Path("/usr"), Kind.BIND, "/usr")]
    for name in SYSTEM_LINKS:
        path = Path("/", name)
        if path.is_symlink():
            found.append(Entry(path, Kind.LINK, os.readlink(path)))
        elif path.is_dir():
            found.append(Entry(path, Kind.BIND, str(path)))
    wanted = [etc / entry for entry in (*ETC_FILES, *ETC_DIRECTORIES)] + sorted(etc.glob("python3*"))
    for path in wanted:
        if not os.path.lexists(path):
            continue
        shown = Path("/etc", path.relative_to(etc))
        resolved = Path(os.path.realpath(path))
        if path.is_symlink() and within(resolved, Path("/usr")):
            found.append(Entry(shown, Kind.LINK, os.readlink(path)))  # e.g. localtime: some read the link
        elif resolved.is_dir():
            found.append(Entry(shown, Kind.BIND, str(resolved)))
        elif resolved.is_file():
            found.append(Entry(shown, Kind.COPY, str(resolved)))
    return found


def passwd(uid: int, home: Path) -> bytes:
    """/etc/passwd naming root, nobody and the worker's user `agent` (uid `uid`, home `home`)."""
    shown = home if not any(c in str(home) for c in ":\n") else Path("/")
    return (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"agent:x:{uid}:{uid}:agent:{shown}:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ).encode()


def group(gid: int) -> bytes:
    """/etc/group naming root, nogroup and the worker's group `agent`."""
    return f"root:x:0:\nagent:x:{gid}:\nnogroup:x:65534:\n".encode()


def outermost(paths: Iterable[Path]) -> list[Path]:
    """Absolute paths not already visible: none inside /usr or inside another of them."""
    kept: list[Path] = []
    for path in sorted({Path(os.path.abspath(path)) for path in paths}):
        if path == Path("/"):
            raise ValueError("the whole host filesystem cannot be part of a sandbox view")
        if within(Path(os.path.realpath(path)), Path("/usr")) or any(within(path, k) for k in kept):
            continue
        kept.append(path)
    return kept


def within(path: Path, tree: Path) -> bool:
    """Whether `path` is `tree` or lies inside it (lexically)."""
    return path == tree or tree in path.parents


__all__ = ["ETC_DIRECTORIES", "ETC_FILES", "SYSTEM_LINKS", "Entry", "Kind", "entries", "group", "outermost",
           "passwd", "within"]  # fmt: skip
