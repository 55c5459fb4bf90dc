"""The seccomp filter's BPF program, run by a small classic-BPF interpreter: `backends/seccomp.py`.

The kernel's verdicts on a real worker are in tests/security/test_worker_escape.py; here the program
is checked against the tables for every system call number and argument hypothesis draws.
"""

from __future__ import annotations

import errno
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from open_agentcore.backends import seccomp
from open_agentcore.backends.seccomp import Architecture, Instruction

ALLOW = seccomp.RET_ALLOW
EPERM = seccomp.RET_ERRNO | errno.EPERM
ENOSYS = seccomp.RET_ERRNO | errno.ENOSYS
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_ARM = 0x40000028
ARCHITECTURES = [seccomp.X86_64, seccomp.AARCH64]


def run_filter(program: list[Instruction], data: bytes) -> int:
    """Classic BPF as the kernel runs a seccomp filter: A register, forward jumps, a return ends it."""
    accumulator = 0
    pc = 0
    while True:
        assert 0 <= pc < len(program), f"fell off the program at {pc}"
        code, jt, jf, k = program[pc]
        pc += 1
        if code == seccomp.LD_W_ABS:
            assert k % 4 == 0 and k + 4 <= len(data)
            accumulator = struct.unpack_from("<I", data, k)[0]
        elif code == seccomp.ALU_AND_K:
            accumulator &= k
        elif code == seccomp.JEQ_K:
            pc += jt if accumulator == k else jf
        elif code == seccomp.JGE_K:
            pc += jt if accumulator >= k else jf
        elif code == seccomp.JSET_K:
            pc += jt if accumulator & k else jf
        elif code == seccomp.RET_K:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def seccomp_data(nr: int, arch: int, args: tuple[int, ...] = (0,) * 6) -> bytes:
    return struct.pack("<IIQ6Q", nr, arch, 0x401000, *args)


def expected_verdict(arch: Architecture, nr: int, audit_arch: int, args: tuple[int, ...]) -> int:
    """What the tables say, independently of how the program is laid out."""
    # On x86_64 every number from the x32 bit up is refused (none is a native call).
    if audit_arch != arch.audit_arch or (arch.has_x32 and nr >= seccomp.X32_SYSCALL_BIT):
        return EPERM
    names = {number: name for name, number in arch.numbers.items()}
    name = names.get(nr)
    low = args[0] & 0xFFFFFFFF
    if name in seccomp.NOT_IMPLEMENTED:
        return ENOSYS
    if name in seccomp.DENIED:
        return EPERM
    if name == "clone" and low & seccomp.CLONE_NEW_NAMESPACES:
        return EPERM
    if name == "personality" and low not in seccomp.HARMLESS_PERSONALITIES:
        return EPERM
    mode_argument = {"mknodat": 2, "mknod": 1}.get(name or "")
    if mode_argument is not None and args[mode_argument] & seccomp.S_IFMT in seccomp.DEVICE_FILE_TYPES:
        return EPERM
    return ALLOW


@st.composite
def system_calls(draw: st.DrawFn, arch: Architecture) -> tuple[int, int, tuple[int, ...]]:
    nr = draw(
        st.one_of(
            st.sampled_from(sorted(arch.numbers.values())),
            st.integers(0, 500),
            st.integers(0, 2**32 - 1),
            st.sampled_from(sorted(arch.numbers.values())).map(lambda n: n | seccomp.X32_SYSCALL_BIT),
        )
    )
    audit_arch = draw(st.sampled_from([arch.audit_arch, arch.audit_arch, AUDIT_ARCH_I386, AUDIT_ARCH_ARM]))
    interesting = st.one_of(
        st.sampled_from(seccomp.HARMLESS_PERSONALITIES),
        st.sampled_from(
            [0x11, 0x3D0F00, 0x10000000 | 0x11, 0x00040000, 0o010644, 0o020666, 0o060600, 0o140777]
        ),
        st.integers(0, 2**64 - 1),
    )
    return nr, audit_arch, tuple(draw(interesting) for _ in range(6))


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda arch: arch.name)
def test_every_path_through_the_program_stays_inside_it_and_ends_in_a_return(arch: Architecture) -> None:
    program = seccomp.filter_program(arch)
    assert len(program) < 4096  # BPF_MAXINSNS
    for index, (code, jt, jf, _k) in enumerate(program):
        if code in (seccomp.JEQ_K, seccomp.JGE_K, seccomp.JSET_K):
            assert index + 1 + max(jt, jf) < len(program)
    assert program[-1] == Instruction(seccomp.RET_K, 0, 0, ALLOW)
    assert len(seccomp.encode(program)) == 8 * len(program)


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda arch: arch.name)
def test_verdicts_match_the_tables(arch: Architecture) -> None:
    program = seccomp.filter_program(arch)

    @settings(max_examples=400, deadline=None)
    @given(system_calls(arch))
    def check(call: tuple[int, int, tuple[int, ...]]) -> None:
        nr, audit_arch, args = call
        assert run_filter(program, seccomp_data(nr, audit_arch, args)) == expected_verdict(
            arch, nr, audit_arch, args
        )

    check()


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda arch: arch.name)
def test_each_denied_call_is_refused_and_everything_else_in_range_allowed(arch: Architecture) -> None:
    program = seccomp.filter_program(arch)
    denied = {arch.numbers[name] for name in seccomp.DENIED if name in arch.numbers}
    for nr in range(0, 1024):
        verdict = run_filter(program, seccomp_data(nr, arch.audit_arch))
        if nr in denied:
            assert verdict == EPERM, nr
        elif nr == arch.numbers["clone3"]:
            assert verdict == ENOSYS
        else:
            assert verdict == ALLOW, nr


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda arch: arch.name)
def test_a_fork_servers_filter_lets_through_only_unshare_and_mount_of_what_a_workers_refuses(
    arch: Architecture,
) -> None:
    worker = seccomp.filter_program(arch)
    fork_server = seccomp.filter_program(arch, allowed=("unshare", "mount"))
    let_through = {arch.numbers["unshare"], arch.numbers["mount"]}
    for nr in range(0, 1024):
        verdicts = [
            run_filter(program, seccomp_data(nr, arch.audit_arch)) for program in (worker, fork_server)
        ]
        assert verdicts[1] == (ALLOW if nr in let_through else verdicts[0]), nr


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda arch: arch.name)
def test_a_foreign_abi_is_refused_before_the_number_is_looked_at(arch: Architecture) -> None:
    program = seccomp.filter_program(arch)
    for foreign in (AUDIT_ARCH_I386, AUDIT_ARCH_ARM, 0):
        # 20 is getpid on i386; a number the native table allows must still be refused.
        assert run_filter(program, seccomp_data(20, foreign)) == EPERM


def test_x32_numbers_are_refused_on_x86_64() -> None:
    program = seccomp.filter_program(seccomp.X86_64)
    getpid = 39
    assert run_filter(program, seccomp_data(getpid, seccomp.X86_64.audit_arch)) == ALLOW
    assert (
        run_filter(program, seccomp_data(getpid | seccomp.X32_SYSCALL_BIT, seccomp.X86_64.audit_arch))
        == EPERM
    )


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda arch: arch.name)
def test_clone_for_threads_and_fork_is_allowed_but_not_into_new_namespaces(arch: Architecture) -> None:
    program = seccomp.filter_program(arch)
    clone = arch.numbers["clone"]
    thread = 0x3D0F00  # glibc's pthread_create flags
    fork = 0x01200011  # CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
    for flags in (thread, fork, 0x4111):  # 0x4111: vfork | CLONE_VM | SIGCHLD (posix_spawn)
        assert run_filter(program, seccomp_data(clone, arch.audit_arch, (flags, 0, 0, 0, 0, 0))) == ALLOW
    for namespace in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000):
        args = (fork | namespace, 0, 0, 0, 0, 0)
        assert run_filter(program, seccomp_data(clone, arch.audit_arch, args)) == EPERM


@pytest.mark.parametrize("arch", ARCHITECTURES, ids=lambda arch: arch.name)
def test_fifos_may_be_made_but_not_device_nodes(arch: Architecture) -> None:
    program = seccomp.filter_program(arch)
    mknodat = arch.numbers["mknodat"]
    fifo, regular, char_device, block_device = 0o010644, 0o100644, 0o020666, 0o060600
    for mode, verdict in ((fifo, ALLOW), (regular, ALLOW), (char_device, EPERM), (block_device, EPERM)):
        assert run_filter(program, seccomp_data(mknodat, arch.audit_arch, (0, 0, mode, 0, 0, 0))) == verdict


def test_the_tables_have_no_number_twice_and_name_every_denied_call() -> None:
    for arch in ARCHITECTURES:
        assert len(set(arch.numbers.values())) == len(arch.numbers), arch.name
        assert set(arch.numbers) <= {
            *seccomp.DENIED,
            *seccomp.NOT_IMPLEMENTED,
            "clone",
            "personality",
            "mknod",
            "mknodat",
        }
    assert set(seccomp.DENIED) <= set(seccomp.X86_64.numbers)
    # The generic table simply lacks these (x86-only or long removed); a typo would show up here.
    absent = set(seccomp.DENIED) - set(seccomp.AARCH64.numbers)
    assert absent == {
        "iopl",
        "ioperm",
        "uselib",
        "create_module",
        "get_kernel_syms",
        "query_module",
        "_sysctl",
    }


def test_another_architecture_has_no_filter() -> None:
    with pytest.raises(seccomp.SeccompUnavailable, match="riscv64"):
        seccomp.architecture("riscv64")
    assert seccomp.architecture("arm64") is seccomp.AARCH64
