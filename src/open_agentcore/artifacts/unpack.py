"""Unpacking an uploaded zip safely: no path escapes, no links, no zip bombs, read-only result."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from .storage import ArtifactError

MAX_UNPACKED = 750 * 1024 * 1024
MAX_FILES = 20_000


class UnsafeArtifact(ArtifactError):
    """The zip holds an entry that must not be unpacked; the message names it."""


def _check_name(name: str) -> PurePosixPath:
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArtifact(f"entry {name!r} has an absolute or Windows-style path")
    path = PurePosixPath(name)
    if any(part == ".." for part in path.parts):
        raise UnsafeArtifact(f"entry {name!r} points outside the archive")
    return path


def _check_entries(archive: zipfile.ZipFile, max_total: int, max_files: int) -> list[zipfile.ZipInfo]:
    entries = archive.infolist()
    if len(entries) > max_files:
        raise UnsafeArtifact(f"the archive has {len(entries)} entries; at most {max_files} are allowed")
    seen: set[str] = set()
    declared = 0
    for entry in entries:
        _check_name(entry.filename)
        kind = stat.S_IFMT(entry.external_attr >> 16)
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArtifact(f"entry {entry.filename!r} is a link or special file")
        normal = entry.filename.rstrip("/")
        if normal in seen:
            raise UnsafeArtifact(f"entry {entry.filename!r} appears twice")
        seen.add(normal)
        declared += entry.file_size
    if declared > max_total:
        raise UnsafeArtifact(f"the archive unpacks to more than {max_total // (1024 * 1024)} MB")
    return entries


def _extract(archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo], dest: Path, max_total: int) -> None:
    written = 0
    for entry in entries:
        target = dest / _check_name(entry.filename)
        if entry.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(entry) as source, target.open("wb") as out:
            # Count real bytes: a header may lie about the size.
            while chunk := source.read(1024 * 1024):
                written += len(chunk)
                if written > max_total:
                    raise UnsafeArtifact(f"the archive unpacks to more than {max_total // (1024 * 1024)} MB")
                out.write(chunk)


def _make_read_only(root: Path) -> None:
    for directory, _dirs, files in os.walk(root):
        for name in files:
            (Path(directory) / name).chmod(0o444)
        Path(directory).chmod(0o555)


def unpack(zip_path: Path, dest: Path, max_total: int = MAX_UNPACKED, max_files: int = MAX_FILES) -> Path:
    """Unpack once into `dest` (reused when it exists); nothing is left behind on failure."""
    if dest.exists():
        return dest
    staging = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}")
    staging.mkdir(parents=True)
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                _extract(archive, _check_entries(archive, max_total, max_files), staging, max_total)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as error:
            raise UnsafeArtifact(f"the archive cannot be read: {error}") from None
        try:
            os.replace(staging, dest)
        except OSError:
            if not dest.exists():
                raise
            return dest  # unpacked meanwhile by another build of the same artifact: the same files
        _make_read_only(dest)
    finally:
        if staging.exists():
            for directory, _, _ in os.walk(staging):
                Path(directory).chmod(0o755)
            shutil.rmtree(staging, ignore_errors=True)
    return dest


__all__ = ["MAX_FILES", "MAX_UNPACKED", "UnsafeArtifact", "unpack"]
