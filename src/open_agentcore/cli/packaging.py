"""The code zip `deploy` uploads: the project directory, minus what it should not ship.

What is left out: `.dockerignore` and `.gitignore` rules (the same gitignore-style patterns:
`#` comments, `!` negations, a trailing `/` for directories, a leading or inner `/` anchoring to
the project root, `*`, `?` and `**`), plus defaults no agent needs at run time (virtualenvs,
caches, version control, tests, our own state).
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import CliError
from .project import CONFIG_FILE, STATE_DIR

DEFAULT_IGNORES = (
    ".git/", ".hg/", ".svn/", ".venv/", "venv/", "env/", "__pycache__/", "*.pyc", "*.pyo",
    ".mypy_cache/", ".pytest_cache/", ".ruff_cache/", ".tox/", ".nox/", "node_modules/",
    ".DS_Store", "*.egg-info/", "dist/", "build/", "tests/", "test/", f"{STATE_DIR}/", CONFIG_FILE,
    ".env",
)  # fmt: skip
MAX_ARCHIVE = 250 * 1024 * 1024


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    negated: bool
    directory_only: bool


@dataclass(frozen=True)
class Package:
    archive: bytes
    files: list[str]
    unpacked_size: int


def parse_rules(lines: list[str]) -> list[Rule]:
    rules = []
    for raw in lines:
        line = raw.rstrip("\n").rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line[1:] if negated else line
        directory_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        if not line:
            continue
        body = _translate(line)
        prefix = "" if anchored else "(?:.*/)?"
        rules.append(Rule(re.compile(f"^{prefix}{body}$"), negated, directory_only))
    return rules


def _translate(glob: str) -> str:
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def ignored(rules: list[Rule], relative: str, is_dir: bool) -> bool:
    """Whether the last matching rule leaves this path out (gitignore semantics)."""
    verdict = False
    for rule in rules:
        if rule.directory_only and not is_dir:
            continue
        if rule.pattern.match(relative):
            verdict = not rule.negated
    return verdict


def project_rules(root: Path) -> list[Rule]:
    lines = list(DEFAULT_IGNORES)
    for name in (".gitignore", ".dockerignore"):
        path = root / name
        if path.exists():
            lines += path.read_text(errors="replace").splitlines()
    return parse_rules(lines)


def package(root: Path, extra: dict[str, bytes] | None = None) -> Package:
    """Zip `root` (deterministically: sorted, fixed timestamps), honouring the ignore rules.

    `extra` adds files by archive name (a requirements file kept elsewhere, as `requirements.txt`).
    Symbolic links are followed only when they stay inside the project.
    """
    rules = project_rules(root)
    files: list[tuple[str, Path]] = []
    for directory, subdirs, names in os.walk(root):
        here = Path(directory)
        relative_dir = here.relative_to(root).as_posix()
        prefix = "" if relative_dir == "." else relative_dir + "/"
        subdirs[:] = sorted(d for d in subdirs if not ignored(rules, prefix + d, True))
        for name in sorted(names):
            relative = prefix + name
            path = here / name
            if ignored(rules, relative, False):
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
                continue
            if path.is_file():
                files.append((relative, path))
    buffer = io.BytesIO()
    size = 0
    names = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative, path in files:
            if extra and relative in extra:
                continue
            mode = stat.S_IMODE(path.stat().st_mode)
            info = zipfile.ZipInfo(relative, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (mode | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            size += len(data)
            archive.writestr(info, data)
            names.append(relative)
        for relative, data in sorted((extra or {}).items()):
            info = zipfile.ZipInfo(relative, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
            size += len(data)
            names.append(relative)
    archive_bytes = buffer.getvalue()
    if len(archive_bytes) > MAX_ARCHIVE:
        raise CliError(
            f"the code zip is {len(archive_bytes) / 1e6:.0f} MB, over the 250 MB limit: "
            "leave large files out with .dockerignore"
        )
    return Package(archive_bytes, names, size)


__all__ = ["DEFAULT_IGNORES", "Package", "ignored", "package", "parse_rules", "project_rules"]
