"""The seccomp filter of sandboxed workers: a classic-BPF program, built here, for x86_64 and aarch64.

bubblewrap's `--seccomp FD` installs a raw `struct sock_filter[]` read from FD just before it
executes the worker. The filter refuses (EPERM) the system calls an agent has no use for and that
widen the kernel's attack surface or reach beyond the sandbox: mounts, namespaces, tracing other
processes, kernel keyrings, bpf, modules, reboot, clocks, raw device nodes. `clone3` answers ENOSYS
instead, so glibc falls back to `clone`, whose flags the filter can inspect. Everything else is
allowed: threads, fork/exec, sockets, asyncio, ssl and multiprocessing work as usual.

A call made through another ABI (i386 `int 0x80` on x86_64, AArch32 on aarch64) or with an x32
number (on x86_64, any number from bit 30 up) is refused before any number is looked at: the
tables below hold native numbers only.
"""

from __future__ import annotations

import errno
import platform
import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
NR_OFFSET = 0
ARCH_OFFSET = 4
ARGS_OFFSET = 16

# Classic BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
ALU_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
RET_K = 0x06  # BPF_RET | BPF_K
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000

X32_SYSCALL_BIT = 0x40000000

# Namespaces a new process may not get. CLONE_NEWTIME (0x80) is absent on purpose: for `clone` that
# bit is part of the exit signal, and the kernel accepts the flag only from `clone3` and `unshare`,
# which are refused outright.
CLONE_NEW_NAMESPACES = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)

# personality(2) values that change nothing that matters: query (0xffffffff), PER_LINUX,
# PER_LINUX32 and UNAME26 (what Docker's default profile allows too). ADDR_NO_RANDOMIZE and
# READ_IMPLIES_EXEC are refused.
HARMLESS_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

S_IFMT = 0o170000
DEVICE_FILE_TYPES = (0o020000, 0o060000)  # S_IFCHR, S_IFBLK: FIFOs and sockets stay allowed

# Refused with EPERM wherever the architecture has them.
DENIED = (
    # the mount table
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    # other namespaces
    "setns", "unshare",
    # other processes' memory
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise",
    # kernel keyrings
    "keyctl", "add_key", "request_key",
    # large kernel attack surface for no use an agent has
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "lookup_dcookie", "fanotify_init",
    # modules, reboot and other host administration
    "init_module", "finit_module", "delete_module", "create_module", "get_kernel_syms", "query_module",
    "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
    "syslog", "nfsservctl", "_sysctl", "vhangup", "uselib",
    # file handles bypass the mount namespace
    "open_by_handle_at", "name_to_handle_at",
    # hardware ports
    "iopl", "ioperm",
    # clocks
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
)  # fmt: skip

# Answered with ENOSYS: glibc then falls back to `clone`, whose flags the filter can see
# (clone3 passes them in memory, out of the filter's reach).
NOT_IMPLEMENTED = ("clone3",)


class Instruction(NamedTuple):
    """One `struct sock_filter`."""

    code: int
    jt: int
    jf: int
    k: int


class ArgumentRule(Protocol):
    """A system call allowed or refused by the low 32 bits of one argument."""

    @property
    def syscall(self) -> str: ...

    def block(self, deny: int) -> list[Instruction]:
        """Instructions run with the call's number in A; every path ends in a return."""
        ...


@dataclass(frozen=True)
class RefuseFlags:
    """Refused when any of `flags` is set in the argument."""

    syscall: str
    argument: int
    flags: int

    def block(self, deny: int) -> list[Instruction]:
        return [_load_argument(self.argument), _jump(JSET_K, self.flags, 0, 1), _ret(deny), _ret(RET_ALLOW)]


@dataclass(frozen=True)
class AllowValues:
    """Allowed only when the argument is one of `values`."""

    syscall: str
    argument: int
    values: tuple[int, ...]

    def block(self, deny: int) -> list[Instruction]:
        count = len(self.values)
        checks = [_jump(JEQ_K, value, count - index, 0) for index, value in enumerate(self.values)]
        return [_load_argument(self.argument), *checks, _ret(deny), _ret(RET_ALLOW)]


@dataclass(frozen=True)
class RefuseFileTypes:
    """Refused when the file type bits (`mode & S_IFMT`) of the argument are one of `types`."""

    syscall: str
    argument: int
    types: tuple[int, ...]

    def block(self, deny: int) -> list[Instruction]:
        count = len(self.types)
        checks = [_jump(JEQ_K, kind, count - index, 0) for index, kind in enumerate(self.types)]
        return [_load_argument(self.argument), _stmt(ALU_AND_K, S_IFMT), *checks, _ret(RET_ALLOW), _ret(deny)]


@dataclass(frozen=True)
class Architecture:
    """What the filter needs to know of one architecture: its audit id and system call numbers."""

    name: str
    audit_arch: int
    numbers: Mapping[str, int]
    # x86_64 only: numbers with bit 30 set reach the x32 ABI through the same entry point.
    has_x32: bool = False

    def argument_rules(self) -> list[ArgumentRule]:
        rules: list[ArgumentRule] = [
            RefuseFlags("clone", 0, flags=CLONE_NEW_NAMESPACES),
            AllowValues("personality", 0, values=HARMLESS_PERSONALITIES),
            RefuseFileTypes("mknodat", 2, types=DEVICE_FILE_TYPES),
        ]
        if "mknod" in self.numbers:
            rules.append(RefuseFileTypes("mknod", 1, types=DEVICE_FILE_TYPES))
        return rules


X86_64 = Architecture(
    name="x86_64",
    audit_arch=0xC000003E,  # AUDIT_ARCH_X86_64
    has_x32=True,
    numbers={
        "clone": 56, "ptrace": 101, "syslog": 103, "uselib": 134, "personality": 135, "mknod": 133,
        "vhangup": 153, "pivot_root": 155, "_sysctl": 156, "adjtimex": 159, "chroot": 161,
        "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168,
        "reboot": 169, "iopl": 172, "ioperm": 173, "create_module": 174, "init_module": 175,
        "delete_module": 176, "get_kernel_syms": 177, "query_module": 178, "quotactl": 179,
        "nfsservctl": 180, "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246,
        "add_key": 248, "request_key": 249, "keyctl": 250, "mknodat": 259, "unshare": 272,
        "perf_event_open": 298, "fanotify_init": 300, "name_to_handle_at": 303, "open_by_handle_at": 304,
        "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311,
        "kcmp": 312, "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
        "pidfd_getfd": 438, "process_madvise": 440, "mount_setattr": 442, "quotactl_fd": 443,
    },
)  # fmt: skip

# aarch64 uses the generic table (asm-generic/unistd.h); it has no mknod, iopl, ioperm or uselib.
AARCH64 = Architecture(
    name="aarch64",
    audit_arch=0xC00000B7,  # AUDIT_ARCH_AARCH64
    numbers={
        "lookup_dcookie": 18, "mknodat": 33, "umount2": 39, "mount": 40, "pivot_root": 41,
        "nfsservctl": 42, "chroot": 51, "vhangup": 58, "quotactl": 60, "acct": 89, "personality": 92,
        "unshare": 97, "kexec_load": 104, "init_module": 105, "delete_module": 106,
        "clock_settime": 112, "syslog": 116, "ptrace": 117, "reboot": 142, "settimeofday": 170,
        "adjtimex": 171, "add_key": 217, "request_key": 218, "keyctl": 219, "clone": 220,
        "swapon": 224, "swapoff": 225, "perf_event_open": 241, "fanotify_init": 262,
        "name_to_handle_at": 264, "open_by_handle_at": 265, "clock_adjtime": 266, "setns": 268,
        "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "finit_module": 273,
        "bpf": 280, "userfaultfd": 282, "kexec_file_load": 294, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
        "pidfd_getfd": 438, "process_madvise": 440, "mount_setattr": 442, "quotactl_fd": 443,
    },
)  # fmt: skip

ARCHITECTURES = {"x86_64": X86_64, "amd64": X86_64, "aarch64": AARCH64, "arm64": AARCH64}


class SeccompUnavailable(Exception):
    """No filter can be built for this machine's architecture."""


def machine() -> str:
    """This machine's architecture, as `uname -m` names it."""
    return platform.machine()


def architecture(name: str | None = None) -> Architecture:
    """The architecture named (default: this machine's); `SeccompUnavailable` when there is no table."""
    name = machine() if name is None else name
    found = ARCHITECTURES.get(name.lower())
    if found is None:
        raise SeccompUnavailable(f"no seccomp filter for the {name} architecture (only x86_64 and aarch64)")
    return found


def filter_program(arch: Architecture, allowed: Collection[str] = ()) -> list[Instruction]:
    """The filter for `arch`, as instructions (see `encode`). `allowed`: calls of `DENIED` to let
    through all the same (a fork server's filter lets `unshare` and `mount` through: its children
    make their sandboxes with them, then install the whole filter)."""
    deny = RET_ERRNO | errno.EPERM
    program = [_load(ARCH_OFFSET), _jump(JEQ_K, arch.audit_arch, 1, 0), _ret(deny), _load(NR_OFFSET)]
    if arch.has_x32:
        program += [_jump(JGE_K, X32_SYSCALL_BIT, 0, 1), _ret(deny)]
    for name in NOT_IMPLEMENTED:
        program += _refuse(arch.numbers[name], RET_ERRNO | errno.ENOSYS)
    for name in DENIED:
        if name in arch.numbers and name not in allowed:
            program += _refuse(arch.numbers[name], deny)
    for rule in arch.argument_rules():
        block = rule.block(deny)
        program += [_jump(JEQ_K, arch.numbers[rule.syscall], 0, len(block)), *block]
    program.append(_ret(RET_ALLOW))
    return program


def encode(program: Sequence[Instruction]) -> bytes:
    """The program as bubblewrap's `--seccomp` reads it: `struct sock_filter[]` in native byte order."""
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


def _refuse(number: int, verdict: int) -> list[Instruction]:
    return [_jump(JEQ_K, number, 0, 1), _ret(verdict)]


def _load(offset: int) -> Instruction:
    return _stmt(LD_W_ABS, offset)


def _load_argument(index: int) -> Instruction:
    # The low 32 bits, on both (little-endian) architectures: every argument checked here is an
    # `int`, `unsigned int` or `umode_t`, or (clone's flags) one whose high half the kernel ignores.
    return _load(ARGS_OFFSET + 8 * index)


def _stmt(code: int, k: int) -> Instruction:
    return Instruction(code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> Instruction:
    return Instruction(code, jt, jf, k)


def _ret(verdict: int) -> Instruction:
    return _stmt(RET_K, verdict)


__all__ = [
    "AARCH64",
    "ARCHITECTURES",
    "CLONE_NEW_NAMESPACES",
    "DENIED",
    "HARMLESS_PERSONALITIES",
    "NOT_IMPLEMENTED",
    "X86_64",
    "Architecture",
    "Instruction",
    "SeccompUnavailable",
    "architecture",
    "encode",
    "filter_program",
    "machine",
]
