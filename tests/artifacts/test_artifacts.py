"""Artifact storage, safe unpacking and cached environment builds: `artifacts/`."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import subprocess
import threading
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from open_agentcore.artifacts import (
    ArtifactNotFound,
    ArtifactStore,
    ArtifactTooLarge,
    BuildFailed,
    EnvironmentBuilder,
    InvalidArtifact,
    UnsafeArtifact,
    unpack,
)


def make_zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


async def _chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def put(store: ArtifactStore, data: bytes, limit: int = 1 << 20) -> str:
    return asyncio.run(store.put(_chunks(data), max_bytes=limit)).key


def test_storage_is_idempotent_by_content(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    data = make_zip({"agent.py": b"print(1)"})
    first, second = put(store, data), put(store, data)
    assert first == second and first.endswith(".zip") and len(first) == 68
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == [first]


def test_storage_refuses_oversize_and_non_zip_and_leaves_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    with pytest.raises(ArtifactTooLarge):
        put(store, make_zip({"big": os.urandom(5000)}), limit=1000)  # incompressible
    with pytest.raises(InvalidArtifact):
        put(store, b"not a zip at all")
    assert list((tmp_path / "artifacts").iterdir()) == []
    with pytest.raises(ArtifactNotFound):
        store.path("../../etc/passwd")


@pytest.mark.parametrize(
    ("entries", "links", "message"),
    [
        ({"../escape.py": b"x"}, None, "outside"),
        ({"/etc/cron.d/x": b"x"}, None, "absolute"),
        ({"dir\\..\\x": b"x"}, None, "Windows"),
        ({"ok.py": b"x"}, {"link": "/etc/passwd"}, "link"),
    ],
)
def test_unsafe_archives_are_refused(
    tmp_path: Path, entries: dict[str, bytes], links: dict[str, str] | None, message: str
) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip(entries, links))
    with pytest.raises(UnsafeArtifact, match=message):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_zip_bomb_is_stopped_by_counting_real_bytes(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(make_zip({"zeros": b"\0" * 200_000}))
    with pytest.raises(UnsafeArtifact, match="more than"):
        unpack(archive, tmp_path / "out", max_total=100_000)
    # A header that lies about the size is caught while extracting.
    data = bytearray(archive.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")  # uncompressed size claims 10 bytes
    archive.write_bytes(bytes(data))
    with pytest.raises(UnsafeArtifact):
        unpack(archive, tmp_path / "out2", max_total=100_000)
    assert not (tmp_path / "out2").exists()


def test_unpacked_code_is_read_only(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"agent.py": b"app = 1", "pkg/mod.py": b""}))
    out = unpack(archive, tmp_path / "out")
    assert (out / "agent.py").read_text() == "app = 1"
    assert stat.S_IMODE((out / "agent.py").stat().st_mode) == 0o444
    assert stat.S_IMODE((out / "pkg").stat().st_mode) == 0o555
    assert unpack(archive, tmp_path / "out") == out  # reused


# Environment builds (PyPI is reachable from this machine and CI) ----------------------------


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvironmentBuilder]:
    yield EnvironmentBuilder(tmp_path_factory.mktemp("build-cache"))


def code(tmp_path: Path, requirements: str | None) -> Path:
    directory = tmp_path / "code"
    directory.mkdir(parents=True)
    (directory / "agent.py").write_text("")
    if requirements is not None:
        (directory / "requirements.txt").write_text(requirements)
    return directory


def run_in(python: Path, source: str) -> str:
    return subprocess.run(
        [str(python), "-c", source], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_no_requirements_uses_the_server_interpreter(tmp_path: Path, builder: EnvironmentBuilder) -> None:
    built = builder.build(code(tmp_path, None), tmp_path / "build.log")
    assert built.env_hash == "base" and built.root is None
    assert "no requirements" in (tmp_path / "build.log").read_text()


def test_requirements_are_installed_with_our_sdk_layered_in(
    tmp_path: Path, builder: EnvironmentBuilder
) -> None:
    built = builder.build(code(tmp_path, "six==1.16.0\n"), tmp_path / "build.log")
    probe = "import six, uvicorn, bedrock_agentcore; print(six.__version__, bedrock_agentcore.__file__)"
    version, sdk_file = run_in(built.python, probe).split()
    assert version == "1.16.0"
    assert "/sdk/" in sdk_file  # our layer, not a PyPI package
    again = builder.build(code(tmp_path / "again", "six==1.16.0\n"), tmp_path / "again.log")
    assert again.python == built.python
    assert "cached" in (tmp_path / "again.log").read_text()


def test_a_missing_package_fails_the_build_quoting_it(tmp_path: Path, builder: EnvironmentBuilder) -> None:
    envs = builder.cache_root / "envs"

    def built() -> set[str]:
        return {p.name for p in envs.iterdir() if not p.name.startswith(".")} if envs.exists() else set()

    before = built()
    with pytest.raises(BuildFailed) as failed:
        builder.build(code(tmp_path, "open-agentcore-no-such-package-xyz==1.0\n"), tmp_path / "build.log")
    assert "open-agentcore-no-such-package-xyz" in failed.value.reason
    assert "$ uv pip install" in (tmp_path / "build.log").read_text()
    assert built() == before  # no half-built environment is cached
    assert not any(p.name.startswith(".") and p.is_dir() for p in envs.iterdir())


def test_an_agent_listing_the_reference_sdk_gets_it(tmp_path: Path, builder: EnvironmentBuilder) -> None:
    built = builder.build(code(tmp_path, "bedrock-agentcore\n"), tmp_path / "build.log")
    probe = (
        "import bedrock_agentcore, importlib.metadata as m; "
        "print(bedrock_agentcore.__file__, m.version('bedrock-agentcore'))"
    )
    sdk_file, version = run_in(built.python, probe).split()
    assert "/sdk/" not in sdk_file and "site-packages" in sdk_file and version


def test_concurrent_unpacks_of_one_artifact_share_one_result(tmp_path: Path) -> None:
    # Two versions naming the same zip, prepared at once (first use on a server that never had it).
    zip_path = tmp_path / "code.zip"
    zip_path.write_bytes(make_zip({f"module_{n}.py": os.urandom(20_000) for n in range(40)}))
    dest = tmp_path / "code" / "abc"
    dest.parent.mkdir()
    start = threading.Barrier(4, timeout=30)
    results: list[Path] = []
    failures: list[BaseException] = []

    def unpack_once() -> None:
        try:
            start.wait()
            results.append(unpack(zip_path, dest))
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=unpack_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert results == [dest] * 4
    assert sorted(p.name for p in dest.parent.iterdir()) == ["abc"]  # no staging dir left
    assert len(list(dest.iterdir())) == 40
