"""Bubblewrap command construction and probing: `backends/sandbox.py`, `backends/uids.py`, and how
`ProcessBackend` refuses to run weaker than asked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from open_agentcore.backends import BackendUnavailable, ProcessBackend, seccomp
from open_agentcore.backends.sandbox import SANDBOX_UID, Bubblewrap, SandboxView, find_bubblewrap
from open_agentcore.backends.uids import UID_SPAN, HostUids

BWRAP = shutil.which("bwrap") or "/usr/bin/bwrap"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
UNPRIVILEGED = 2_147_000_123  # no user of this machine; the tests below run commands as it


def as_root_sandbox(network: str = "default") -> Bubblewrap:
    return Bubblewrap(BWRAP, SETPRIV, seccomp.X86_64, network)


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[index + 1] for index, value in enumerate(argv[:-1]) if value == option]


def bind_pairs(argv: list[str], option: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, value in enumerate(argv[:-2]) if value == option]


# Command construction -----------------------------------------------------------------------


def test_as_root_the_outer_bwrap_binds_then_setpriv_drops_to_the_host_uid_then_the_inner_confines() -> None:
    view = SandboxView(
        read_only=[Path("/opt/venv"), Path("/srv/data/code/v1")], writable=[Path("/srv/data/w/a/home")]
    )
    launch = as_root_sandbox().launch(view, ["/opt/venv/bin/python", "agent.py"], host_uid=2_000_000_042)
    try:
        argv = launch.argv
        separators = [index for index, value in enumerate(argv) if value == "--"]
        outer, drop, inner = (
            argv[: separators[0]],
            argv[separators[0] + 1 : separators[1]],
            argv[separators[1] + 1 :],
        )
        assert outer[0] == BWRAP and "--unshare-user" not in outer and "--seccomp" not in outer
        assert {
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
        } <= set(outer)
        assert "--unshare-net" not in outer
        assert drop == [
            SETPRIV, "--reuid=2000000042", "--regid=2000000042", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all",
        ]  # fmt: skip
        assert inner[0] == BWRAP
        assert inner[inner.index("--uid") + 1] == inner[inner.index("--gid") + 1] == str(SANDBOX_UID)
        assert inner[inner.index("--cap-drop") + 1] == "ALL"
        assert {"--unshare-user", "--disable-userns"} <= set(inner)
        assert int(inner[inner.index("--seccomp") + 1]) in launch.fds
        assert inner[-2:] == ["/opt/venv/bin/python", "agent.py"]
    finally:
        launch.close()


def test_the_root_is_minimal_never_the_whole_host() -> None:
    view = SandboxView(read_only=[Path("/srv/data/code/v1")], writable=[Path("/srv/data/w/a/home")])
    launch = as_root_sandbox().launch(view, ["true"], host_uid=2_000_000_042)
    launch.close()
    binds = bind_pairs(launch.argv, "--ro-bind") + bind_pairs(launch.argv, "--bind")
    sources = {source for source, _ in binds}
    assert ("/", "/") not in binds
    assert {"/usr", "/srv/data/code/v1", "/srv/data/w/a/home"} <= sources
    for hidden in ("/root", "/home", "/var", "/sys", "/srv/data", "/srv/data/w", "/etc", "/etc/ssl", "/tmp"):
        assert hidden not in sources, hidden
    assert not any(source.startswith(("/etc/ssl/private", "/etc/shadow")) for source in sources)
    assert ("/srv/data/w/a/home", "/srv/data/w/a/home") in bind_pairs(launch.argv, "--bind")
    # The inner bubblewrap keeps exactly what the outer one built.
    assert bind_pairs(launch.argv, "--dev-bind") == [("/", "/")]


def test_every_ancestor_of_a_bind_is_made_traversable_before_it() -> None:
    python_home = Path("/root/.pyenv/versions/3.11.7")
    view = SandboxView(read_only=[python_home, python_home / "lib" / "python3.11"])
    launch = as_root_sandbox().launch(view, ["true"], host_uid=2_000_000_042)
    launch.close()
    argv = launch.argv
    made = option_values(argv, "--dir")
    for ancestor in ("/root", "/root/.pyenv", "/root/.pyenv/versions"):
        index = argv.index(ancestor)
        assert argv[index - 3 : index] == ["--perms", "0755", "--dir"], ancestor
        assert index < argv.index(str(python_home))
    assert str(python_home) not in made
    # Already visible inside the prefix: not bound twice.
    assert (str(python_home / "lib" / "python3.11"),) * 2 not in bind_pairs(argv, "--ro-bind")


def test_paths_under_usr_are_not_bound_again_and_the_whole_host_is_refused() -> None:
    sandbox = as_root_sandbox()
    launch = sandbox.launch(
        SandboxView(read_only=[Path("/usr/lib/python3")]), ["true"], host_uid=2_000_000_042
    )
    launch.close()
    assert ("/usr/lib/python3", "/usr/lib/python3") not in bind_pairs(launch.argv, "--ro-bind")
    with pytest.raises(ValueError, match="whole host"):
        sandbox.launch(SandboxView(read_only=[Path("/")]), ["true"], host_uid=2_000_000_042)


def test_no_network_adds_a_network_namespace() -> None:
    launch = as_root_sandbox("none").launch(SandboxView(read_only=[]), ["true"], host_uid=2_000_000_042)
    launch.close()
    outer = launch.argv[: launch.argv.index("--")]
    assert "--unshare-net" in outer
    assert "net" in as_root_sandbox("none").namespaces()


def test_as_root_a_sandbox_without_its_own_uid_is_refused() -> None:
    with pytest.raises(ValueError, match="own host uid"):
        as_root_sandbox().launch(SandboxView(read_only=[]), ["true"])


def test_the_seccomp_and_passwd_fds_hold_the_filter_and_a_user_1000() -> None:
    launch = as_root_sandbox().launch(SandboxView(read_only=[], home=Path("/w/a/home")), ["true"], host_uid=7)
    try:
        contents = {}
        for fd in launch.fds:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            contents[str(fd)] = b"".join(chunks)
    finally:
        launch.close()
    inner = launch.argv[launch.argv.index("--seccomp") :]
    assert contents[inner[1]] == seccomp.encode(seccomp.filter_program(seccomp.X86_64))
    passwd = contents[launch.argv[launch.argv.index("/etc/passwd") - 1]].decode()
    assert f"agent:x:{SANDBOX_UID}:{SANDBOX_UID}:agent:/w/a/home:/bin/sh" in passwd.splitlines()


# Running the command for real ---------------------------------------------------------------


@pytest.fixture
def unprivileged_dir() -> Iterator[Path]:
    """A directory the unprivileged uid owns (its parents let it through; pytest's tmp_path would
    not), beside a root-only directory with a secret in it."""
    top = Path(tempfile.mkdtemp(prefix="sandbox-test-", dir="/tmp"))
    try:
        top.chmod(0o711)
        (top / "server").mkdir(mode=0o700)
        (top / "server" / "secret.txt").write_text("the server's")
        own = top / "own"
        own.mkdir()
        os.chown(own, UNPRIVILEGED, UNPRIVILEGED)
        yield own
    finally:
        shutil.rmtree(top)


def run_as_unprivileged(
    sandbox: Bubblewrap, view: SandboxView, script: str
) -> subprocess.CompletedProcess[str]:
    launch = sandbox.launch(view, ["/bin/sh", "-c", script])
    try:
        return subprocess.run(
            launch.argv,
            pass_fds=launch.fds,
            user=UNPRIVILEGED,
            group=UNPRIVILEGED,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=30,
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
        )
    finally:
        launch.close()


def test_not_as_root_one_bwrap_confines_a_shell_run_by_an_unprivileged_uid(unprivileged_dir: Path) -> None:
    sandbox = Bubblewrap(BWRAP, None, seccomp.architecture())
    view = SandboxView(
        read_only=[], writable=[unprivileged_dir], chdir=unprivileged_dir, home=unprivileged_dir
    )
    script = (
        "grep -E '^(Uid|CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; "
        "cat /proc/self/uid_map; "
        "echo root=$(ls -A /root 2>&1); echo home=$(ls -A /home 2>&1); echo top=$(ls -A / | tr '\\n' ' '); "
        f"echo secret=$(cat {unprivileged_dir.parent}/server/secret.txt 2>&1); echo me=$(whoami); "
        "touch note && echo wrote; touch /usr/x 2>/dev/null || echo usr-read-only; "
        "unshare -U true 2>/dev/null || echo no-userns"
    )
    done = run_as_unprivileged(sandbox, view, script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    assert status["Uid"].split() == [str(SANDBOX_UID)] * 4
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    # One uid mapped (the map reads relative to bubblewrap's outer namespace, in which --disable-userns
    # nests this one); the file it wrote below shows whose it is on the host.
    assert [line.split() for line in lines if line.split()[:1] == ["1000"]] == [["1000", "0", "1"]]
    shown = dict(line.split("=", 1) for line in lines if "=" in line)
    assert "No such file" in shown["root"] and "No such file" in shown["home"]
    assert set(shown["top"].split()) <= {
        "usr",
        "bin",
        "sbin",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "etc",
        "proc",
        "dev",
        "tmp",
    }
    assert "No such file" in shown["secret"]
    assert shown["me"] == "agent"
    assert {"wrote", "usr-read-only", "no-userns"} <= set(lines)
    assert (unprivileged_dir / "note").stat().st_uid == UNPRIVILEGED


def test_as_root_the_nested_sandbox_runs_as_its_host_uid_with_nothing_left(unprivileged_dir: Path) -> None:
    sandbox = as_root_sandbox()
    view = SandboxView(
        read_only=[], writable=[unprivileged_dir], chdir=unprivileged_dir, home=unprivileged_dir
    )
    launch = sandbox.launch(
        view,
        ["/bin/sh", "-c", "touch note; grep -E '^(Uid|CapBnd|Seccomp):' /proc/self/status"],
        UNPRIVILEGED,
    )
    try:
        done = subprocess.run(
            launch.argv, pass_fds=launch.fds, capture_output=True, text=True, timeout=30, cwd="/"
        )
    finally:
        launch.close()
    assert done.returncode == 0, done.stderr
    status = dict(line.split(":\t", 1) for line in done.stdout.splitlines())
    assert status == {"Uid": "1000\t1000\t1000\t1000", "CapBnd": "0000000000000000", "Seccomp": "2"}
    assert (unprivileged_dir / "note").stat().st_uid == UNPRIVILEGED


# Probing: refuse rather than run weaker ------------------------------------------------------


def fake_tools(directory: Path, bwrap_script: str | None) -> str:
    directory.mkdir()
    if bwrap_script is not None:
        (directory / "bwrap").write_text(bwrap_script)
        (directory / "bwrap").chmod(0o755)
    os.symlink(SETPRIV, directory / "setpriv")
    return str(directory)


def test_the_probe_refuses_a_bubblewrap_without_disable_userns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = "#!/bin/sh\necho 'bwrap: Unknown option --disable-userns' >&2\nexit 1\n"
    monkeypatch.setenv("PATH", fake_tools(tmp_path / "bin", old))
    with pytest.raises(BackendUnavailable, match=r"too old for --disable-userns \(bubblewrap 0\.8\.0"):
        ProcessBackend(sandbox="bwrap")
    auto = ProcessBackend(sandbox="auto")
    assert auto.sandbox_mode().startswith("none (") and "--disable-userns" in auto.sandbox_mode()
    assert auto.protections()["sandbox"] == "none"


def test_the_probe_refuses_where_user_namespaces_are_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = (
        "bwrap: No permissions to creating new namespace, likely because the kernel does not allow "
        "non-privileged user namespaces."
    )
    monkeypatch.setenv("PATH", fake_tools(tmp_path / "bin", f"#!/bin/sh\necho '{message}' >&2\nexit 1\n"))
    with pytest.raises(BackendUnavailable, match="user namespaces are not available"):
        ProcessBackend(sandbox="bwrap")


def test_the_probe_checks_what_the_sandboxed_process_reports_not_only_that_it_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A "bubblewrap" that runs the command it confines without confining anything.
    pretend = (
        f"#!{sys.executable}\nimport os, sys\nargs = sys.argv[1:]\n"
        "rest = args[len(args) - args[::-1].index('--'):]\nos.execv(rest[0], rest)\n"
    )
    monkeypatch.setenv("PATH", fake_tools(tmp_path / "bin", pretend))
    with pytest.raises(BackendUnavailable) as refused:
        ProcessBackend(sandbox="bwrap")
    assert "uid is '0\\t0\\t0\\t0'" in str(refused.value)
    assert "keeps capabilities" in str(refused.value)
    assert "no_new_privs is not set" in str(refused.value) and "seccomp filter is not in force" in str(
        refused.value
    )


def test_the_probe_refuses_an_architecture_without_a_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seccomp, "machine", lambda: "riscv64")
    with pytest.raises(BackendUnavailable, match="no seccomp filter for the riscv64 architecture"):
        ProcessBackend(sandbox="bwrap")
    assert "riscv64" in ProcessBackend(sandbox="auto").sandbox_mode()


def test_as_root_setpriv_is_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    os.symlink(BWRAP, tools / "bwrap")
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(BackendUnavailable, match=r"setpriv \(util-linux\) not found"):
        ProcessBackend(sandbox="bwrap")


def test_no_network_without_the_sandbox_is_refused_not_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendUnavailable, match="--session-network none needs the bwrap sandbox"):
        ProcessBackend(sandbox="none", network="none")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BackendUnavailable, match="bubblewrap not found"):
        ProcessBackend(sandbox="auto", network="none")


def test_the_probe_finds_this_machine_able_to_run_the_sandbox() -> None:
    sandbox = find_bubblewrap()
    assert sandbox.as_root  # the suite runs as root, like CI
    assert set(sandbox.probe(2_000_000_007)) == {"user", "mount", "pid", "ipc", "uts", "cgroup"}


# Protections --------------------------------------------------------------------------------


def test_protections_say_what_confines_a_worker_as_root() -> None:
    protections = ProcessBackend(sandbox="bwrap", uid_base=1_500_000_000).protections()
    assert protections == {
        "sandbox": "bwrap",
        "user": "a host uid per session (1500000000+), uid 1000 in its own user namespace",
        "capabilities": "none",
        "no_new_privs": True,
        "seccomp": f"on ({seccomp.architecture().name})",
        "filesystem": "read-only system paths, the version's code and environment, its own home and tmp",
        "network": "host",
        "namespaces": ["user", "mount", "pid", "ipc", "uts", "cgroup"],
    }
    isolated = ProcessBackend(sandbox="bwrap", network="none").protections()
    assert isolated["network"] == "none" and "net" in isolated["namespaces"]  # type: ignore[operator]


def test_protections_without_a_sandbox_say_so_plainly() -> None:
    protections = ProcessBackend(sandbox="none").protections()
    assert protections["sandbox"] == "none" and protections["reason"] == "disabled"
    assert protections["user"] == "the server's own (uid 0, root)"
    assert protections["seccomp"] == "off" and protections["namespaces"] == []


# Host uids ----------------------------------------------------------------------------------


def test_host_uids_are_drawn_at_random_from_the_range_and_never_handed_out_twice() -> None:
    uids = HostUids(2_000_000_000)
    taken = [uids.allocate() for _ in range(2000)]
    assert len(set(taken)) == len(taken)
    assert all(2_000_000_000 <= uid < 2_000_000_000 + UID_SPAN for uid in taken)
    assert max(taken) - min(taken) > UID_SPAN // 2  # spread over the range, not counted up from the base
    uids.release(taken[0])
    assert taken[0] not in uids.held() and len(uids.held()) == 1999


def test_a_uid_range_past_the_last_uid_is_refused() -> None:
    with pytest.raises(ValueError, match="worker uid base"):
        HostUids(2**31 - 10)  # bubblewrap writes uid maps as signed ints
    with pytest.raises(ValueError, match="worker uid base"):
        HostUids(0)
