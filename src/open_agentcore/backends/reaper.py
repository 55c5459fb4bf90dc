"""The pid 1 of a sandboxed forked session, as a tiny static program.

A forked session's pid 1 is a copy of its fork server (a Python process) that built the sandbox;
once the agent is forked, all it does is reap. Building the sandbox wrote to pages it shared with the
fork server (reference counts, the allocator), about 1.5 MiB per session it holds for nothing. So it
exec's this program instead, whose whole memory is a few pages, and those pages go back.

The program is compiled once per server with the host's C compiler (`cc`, `gcc` or `clang`; static
where the C library allows) and handed to each sandboxed fork server as a memfd, which its sessions'
pid 1s execute by descriptor: no file of it exists anywhere a session could see or change. Without a
compiler the pid 1 stays Python, as before, and `reason` says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Reaps every child until the agent (argv[1]) has ended, then exits as it did (128 + N when a
# signal N killed it, as bubblewrap says it). It inherits the session's seccomp filter and
# no_new_privs across the exec; the exec made it dumpable again, so it undoes that first: the
# agent, of the same uid, may not open its memory.
SOURCE = rb"""
#include <errno.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
    if (argc != 2) return 125;
    pid_t agent = (pid_t)atoi(argv[1]);
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return 125;
    for (;;) {
        int status;
        pid_t ended = wait(&status);
        if (ended < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        if (ended == agent) {
            if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
            return WEXITSTATUS(status);
        }
    }
}
"""
NAME = "agentcore-reaper"  # its argv[0], what `ps` shows for a session's pid 1
_COMPILERS = ("cc", "gcc", "clang")
_COMPILE_SECONDS = 60


@dataclass(frozen=True)
class Reaper:
    """The compiled program (None, and why, when it could not be built here)."""

    program: bytes | None
    reason: str = ""


def build() -> Reaper:
    """Compile the reaper (blocking, well under a second): static if the C library allows it."""
    compiler = next((found for name in _COMPILERS if (found := shutil.which(name))), None)
    if compiler is None:
        return Reaper(None, "no C compiler (cc, gcc or clang) to build the sessions' tiny pid 1")
    with tempfile.TemporaryDirectory(prefix="agentcore-reaper-") as scratch:
        source, binary = Path(scratch) / "reaper.c", Path(scratch) / "reaper"
        source.write_bytes(SOURCE)
        errors = ""
        for linking in (["-static"], []):
            try:
                done = subprocess.run(  # noqa: S603 - the compiler found on PATH, our own source
                    [compiler, "-Os", "-s", *linking, "-o", str(binary), str(source)],
                    capture_output=True, text=True, timeout=_COMPILE_SECONDS, check=False,
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as error:
                return Reaper(None, f"{compiler} failed: {error}")
            if done.returncode == 0:
                return Reaper(binary.read_bytes())
            errors = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        return Reaper(None, f"{compiler} could not build the sessions' pid 1: {errors}")


def program_fd(program: bytes) -> int:
    """A memfd holding `program`, executable by descriptor (close-on-exec: an ELF program runs
    from it all the same, and no process it starts inherits it)."""
    fd = os.memfd_create(NAME, os.MFD_CLOEXEC)
    try:
        os.write(fd, program)
    except BaseException:
        os.close(fd)
        raise
    return fd


__all__ = ["NAME", "SOURCE", "Reaper", "build", "program_fd"]
