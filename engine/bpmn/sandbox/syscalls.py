"""The system calls a sandbox process may not make, as a seccomp filter.

Even with full Python in hand (an escape past every guard), a sandbox process cannot open a
socket, start a process or a thread, run a program, signal, trace, re-limit or re-prioritise
another process, enter or make namespaces, mount, change its identity, load kernel code or
use io_uring: such calls fail with EPERM. A call of another ABI (x32 on x86-64) ends the
process.
Everything else (memory, reading the read-only standard library, its own socket, the clock)
stays allowed: the filter denies by name, so a Python upgrade cannot break the sandbox.
"""

import ctypes
import errno
import platform
import struct

from . import libc
from .errors import SandboxUnavailable

_DENIED = (
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "execve",
    "execveat",
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_open",
    "pidfd_send_signal",
    "pidfd_getfd",
    "setpriority",
    "sched_setaffinity",
    "sched_setscheduler",
    "sched_setparam",
    "ioprio_set",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "chroot",
    "pivot_root",
    "open_by_handle_at",
    "name_to_handle_at",
    "mknod",
    "mknodat",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
)
# Numbers from the kernel's unistd headers (asm/unistd_64.h; asm-generic/unistd.h for arm64).
_X86_64 = {
    "socket": 41,
    "socketpair": 53,
    "connect": 42,
    "bind": 49,
    "listen": 50,
    "accept": 43,
    "accept4": 288,
    "clone": 56,
    "clone3": 435,
    "fork": 57,
    "vfork": 58,
    "execve": 59,
    "execveat": 322,
    "kill": 62,
    "tkill": 200,
    "tgkill": 234,
    "pidfd_open": 434,
    "pidfd_send_signal": 424,
    "pidfd_getfd": 438,
    "ptrace": 101,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "unshare": 272,
    "setns": 308,
    "mount": 165,
    "umount2": 166,
    "chroot": 161,
    "pivot_root": 155,
    "open_by_handle_at": 304,
    "name_to_handle_at": 303,
    "mknod": 133,
    "mknodat": 259,
    "setuid": 105,
    "setgid": 106,
    "setreuid": 113,
    "setregid": 114,
    "setresuid": 117,
    "setresgid": 119,
    "setgroups": 116,
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "kexec_load": 246,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "reboot": 169,
    "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297,
    "setpriority": 141,
    "sched_setaffinity": 203,
    "sched_setscheduler": 144,
    "sched_setparam": 142,
    "ioprio_set": 251,
    "prlimit64": 302,
}
_AARCH64 = {
    "socket": 198,
    "socketpair": 199,
    "connect": 203,
    "bind": 200,
    "listen": 201,
    "accept": 202,
    "accept4": 242,
    "clone": 220,
    "clone3": 435,
    "execve": 221,
    "execveat": 281,
    "kill": 129,
    "tkill": 130,
    "tgkill": 131,
    "pidfd_open": 434,
    "pidfd_send_signal": 424,
    "pidfd_getfd": 438,
    "ptrace": 117,
    "process_vm_readv": 270,
    "process_vm_writev": 271,
    "unshare": 97,
    "setns": 268,
    "mount": 40,
    "umount2": 39,
    "chroot": 51,
    "pivot_root": 41,
    "open_by_handle_at": 265,
    "name_to_handle_at": 264,
    "mknodat": 33,
    "setuid": 146,
    "setgid": 144,
    "setreuid": 145,
    "setregid": 143,
    "setresuid": 147,
    "setresgid": 149,
    "setgroups": 159,
    "bpf": 280,
    "perf_event_open": 241,
    "userfaultfd": 282,
    "keyctl": 219,
    "add_key": 217,
    "request_key": 218,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "kexec_load": 104,
    "init_module": 105,
    "finit_module": 273,
    "delete_module": 106,
    "reboot": 142,
    "rt_sigqueueinfo": 138,
    "rt_tgsigqueueinfo": 240,
    "setpriority": 140,
    "sched_setaffinity": 122,
    "sched_setscheduler": 119,
    "sched_setparam": 118,
    "ioprio_set": 30,
    "prlimit64": 261,
}
# machine -> (AUDIT_ARCH_*, syscall numbers, first number of a foreign ABI or None)
_ARCHITECTURES = {
    "x86_64": (0xC000003E, _X86_64, 0x40000000),
    "aarch64": (0xC00000B7, _AARCH64, None),
}

_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_JGE_K, _BPF_RET_K = 0x20, 0x15, 0x35, 0x06
_RET_KILL_PROCESS, _RET_ERRNO, _RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
# struct seccomp_data: nr, arch, instruction pointer, then args[0] (low and high halves).
_NR_OFFSET, _ARCH_OFFSET, _ARG0_LOW_OFFSET, _ARG0_HIGH_OFFSET = 0, 4, 16, 20


class _Instruction(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Instruction))]


def _architecture() -> tuple[int, dict[str, int], int | None]:
    """The ABI this interpreter makes its calls with (a 32-bit interpreter on a 64-bit
    kernel has none of ours)."""
    machine = platform.machine()
    if machine not in _ARCHITECTURES or struct.calcsize("P") != 8:
        raise SandboxUnavailable(
            f"no system-call filter for {machine} with {8 * struct.calcsize('P')}-bit Python"
        )
    return _ARCHITECTURES[machine]


def _program() -> list[tuple[int, int, int, int]]:
    arch, numbers, foreign = _architecture()
    deny = (_BPF_RET_K, 0, 0, _RET_ERRNO | errno.EPERM)
    allow = (_BPF_RET_K, 0, 0, _RET_ALLOW)
    program = [
        (_BPF_LD_W_ABS, 0, 0, _ARCH_OFFSET),
        (_BPF_JEQ_K, 1, 0, arch),
        (_BPF_RET_K, 0, 0, _RET_KILL_PROCESS),
        (_BPF_LD_W_ABS, 0, 0, _NR_OFFSET),
    ]
    if foreign is not None:
        program += [(_BPF_JGE_K, 0, 1, foreign), (_BPF_RET_K, 0, 0, _RET_KILL_PROCESS)]
    for name in _DENIED:
        if name in numbers:
            program += [(_BPF_JEQ_K, 0, 1, numbers[name]), deny]
    # prlimit64 on this process (pid 0; setrlimit is made of it) only: another process's
    # limits are not its business.
    return [
        *program,
        (_BPF_JEQ_K, 0, 5, numbers["prlimit64"]),  # not prlimit64: to `allow`
        (_BPF_LD_W_ABS, 0, 0, _ARG0_LOW_OFFSET),
        (_BPF_JEQ_K, 0, 2, 0),  # low half not 0: to `deny`
        (_BPF_LD_W_ABS, 0, 0, _ARG0_HIGH_OFFSET),
        (_BPF_JEQ_K, 1, 0, 0),  # high half 0 too: to `allow`
        deny,
        allow,
    ]


def restrict() -> None:
    """Install the filter on this process (for good: it cannot be removed, and children would
    inherit it). Needs `no_new_privs`, which the zygote sets (`jail.contain`)."""
    program = [_Instruction(*step) for step in _program()]
    instructions = (_Instruction * len(program))(*program)
    fprog = _Program(len(instructions), instructions)
    try:
        libc.call("prctl", _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0)
    except OSError as exc:
        raise SandboxUnavailable(f"the system-call filter was refused: {exc}") from None
