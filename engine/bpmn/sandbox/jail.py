"""The operating-system side of the sandbox: what a sandbox process can see and do.

`contain()` runs once in the zygote (the process that forks the sandbox processes of one
engine process, see `process_main`), before it serves anything:

1. New namespaces (`unshare`): network (no interface but a loopback that is down, so no
   network at all), mount, PID (no process outside is visible, and the end of the zygote ends
   every sandbox process), IPC and UTS. Without root, a user namespace makes this possible.
2. A new, read-only root file system (`chroot`) holding only Python's standard library (no
   installed packages). The project's files, its settings, `.data/`, `/proc` (and so every
   process's environment), `/usr`, `/etc`, `/home` and `/tmp` are not there. The working
   directory is an empty directory of that file system.
3. The dedicated unprivileged account `baton-sandbox` (created by `make setup` when it runs
   as root), with no supplementary groups; without root, every capability is dropped.
4. `no_new_privs`, and `dumpable` off, so that no process of the same account can read the
   memory or the /proc files of another.
5. In each sandbox process, a system-call filter (`syscalls`): no sockets, processes,
   threads, programs, signals to others, tracing, namespaces, mounts or identity changes.

Where the machine does not allow a step, the zygote goes on without it and says which steps
are missing (`Isolation.problems`); the engine logs that loudly (`client`). The process
resource limits of each sandbox process are set by `limit_process`.
"""

import contextlib
import ctypes
import errno
import os
import pwd
import resource
import tempfile
from dataclasses import dataclass, field
from typing import Any

from . import libc, syscalls
from .limits import LIFETIME_CPU_SECONDS

SANDBOX_USER = "baton-sandbox"

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV = 1, 2, 4
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_PR_SET_DUMPABLE, _PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 4, 24, 38
_CAPABILITY_VERSION_3 = 0x20080522


@dataclass
class Isolation:
    """What containment a zygote (and every sandbox process it forks) runs with."""

    user: str = ""
    namespaces: list[str] = field(default_factory=list)
    root: str = "host"  # "private" when the chroot is in place
    syscall_filter: bool = False
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "namespaces": self.namespaces,
            "root": self.root,
            "syscall_filter": self.syscall_filter,
            "problems": self.problems,
        }


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    libc.call(
        "mount",
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )


def _prctl(option: int, value: int) -> None:
    libc.call("prctl", option, value, 0, 0, 0)


# -- namespaces ------------------------------------------------------------------------------

_BASE_NAMESPACES = {
    "network": _CLONE_NEWNET,
    "mount": _CLONE_NEWNS,
    "ipc": _CLONE_NEWIPC,
    "uts": _CLONE_NEWUTS,
}


def _unshare(isolation: Isolation, as_root: bool) -> bool:
    """New namespaces; True when a PID namespace was made (the caller must fork)."""
    user_flag = 0 if as_root else _CLONE_NEWUSER
    base = sum(_BASE_NAMESPACES.values()) | user_flag
    attempts = (
        (base | _CLONE_NEWPID, True),
        (base, False),
        (_CLONE_NEWNET | _CLONE_NEWNS | user_flag, False),
    )
    chosen = next(((f, p) for f, p in attempts if libc.attempt("unshare", f)), None)
    if chosen is None:
        isolation.problems.append(
            "no namespaces (the machine refused unshare): scripts are not cut off from the "
            "network or the file system"
        )
        return False
    flags, pid = chosen
    if user_flag:
        _map_user()
        isolation.namespaces.append("user")
    isolation.namespaces += [name for name, flag in _BASE_NAMESPACES.items() if flags & flag]
    if pid:
        isolation.namespaces.append("pid")
    return pid


# Inside a user namespace the process is this account, mapped to its own outside; there is no
# root inside to become. Creating the namespace gave it every capability there (for the
# mounts), which `_drop_capabilities` gives up.
_INSIDE_ID = 1000


def _map_user() -> None:
    uid, gid = os.getuid(), os.getgid()
    with open("/proc/self/setgroups", "w") as setgroups:
        setgroups.write("deny")
    with open("/proc/self/uid_map", "w") as uid_map:
        uid_map.write(f"{_INSIDE_ID} {uid} 1")
    with open("/proc/self/gid_map", "w") as gid_map:
        gid_map.write(f"{_INSIDE_ID} {gid} 1")


def _become_init() -> None:
    """After unsharing the PID namespace: fork; the child is PID 1 of the new namespace and
    goes on as the zygote, this process waits for it and exits with its status."""
    pid = os.fork()
    if pid == 0:
        return
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, 65536)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


# -- file system -----------------------------------------------------------------------------


def _bind_read_only(source: str, root: str) -> None:
    target = root + source
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w"):
            pass
    _mount(source, target, None, _MS_BIND | _MS_REC)
    _mount(None, target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)


def _private_root(isolation: Isolation, stdlib: str) -> None:
    """chroot into a new read-only tmpfs holding only the standard library (for what it
    imports lazily; the shared libraries it needs are loaded already, `process_main._preload`),
    without the base interpreter's installed packages; the working directory is its empty
    /work."""
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    root = os.path.join(tempfile.gettempdir(), f"baton-sandbox-root-{os.getuid()}")
    os.makedirs(root, mode=0o755, exist_ok=True)
    _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1m,mode=755")
    os.makedirs(root + "/work", mode=0o755)
    _bind_read_only(stdlib, root)
    installed = os.path.join(stdlib, "site-packages")
    if os.path.isdir(installed):
        _mount(
            "tmpfs",
            root + installed,
            "tmpfs",
            _MS_NOSUID | _MS_NODEV | _MS_RDONLY,
            "size=4k,mode=555",
        )
    _mount(None, root, None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    os.chroot(root)
    os.chdir("/work")
    isolation.root = "private"


# -- privileges ------------------------------------------------------------------------------


def _account(isolation: Isolation, name: str) -> pwd.struct_passwd:
    """The account to switch to (looked up before the host's /etc goes away)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        isolation.problems.append(
            f"the account {name!r} does not exist, so scripts run as 'nobody', which other "
            "programs may share: run `make setup` as root to create it"
        )
        return pwd.getpwnam("nobody")


def _switch_user(isolation: Isolation, account: pwd.struct_passwd) -> None:
    os.setgroups([])
    os.setresgid(account.pw_gid, account.pw_gid, account.pw_gid)
    os.setresuid(account.pw_uid, account.pw_uid, account.pw_uid)
    if os.getresuid() != (account.pw_uid,) * 3:
        raise OSError(errno.EPERM, "the user switch did not take")
    isolation.user = account.pw_name


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _drop_capabilities() -> None:
    """Without root, in a user namespace: give up every capability it granted."""
    for capability in range(64):
        libc.attempt("prctl", _PR_CAPBSET_DROP, capability, 0, 0, 0)
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    libc.call("capset", ctypes.byref(header), data)


def contain(user: str, stdlib: str) -> Isolation:
    """Contain this process (see the module's docstring); returns in the contained zygote."""
    isolation = Isolation()
    as_root = os.geteuid() == 0
    account = _account(isolation, user) if as_root else pwd.getpwuid(os.getuid())
    if _unshare(isolation, as_root):
        _become_init()
    if "mount" in isolation.namespaces:
        try:
            _private_root(isolation, stdlib)
        except OSError as exc:
            isolation.problems.append(f"no private root file system ({exc})")
    else:
        isolation.problems.append(
            "no private root file system: scripts see the host's files their account may read"
        )
    if as_root:
        _switch_user(isolation, account)
    elif "user" in isolation.namespaces:
        _drop_capabilities()
        isolation.user = f"uid {os.getuid()} without capabilities"
    else:
        isolation.user = account.pw_name
        isolation.problems.append(
            f"scripts run as the engine's own account {isolation.user!r}: the machine allows "
            "neither a user switch (not root) nor user namespaces"
        )
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    _prctl(_PR_SET_DUMPABLE, 0)
    _check_syscall_filter(isolation)
    return isolation


def _check_syscall_filter(isolation: Isolation) -> None:
    """Try the system-call filter in a throwaway child (the zygote itself must still fork):
    it must install, and the child must still run Python and reach its exit."""
    pid = os.fork()
    if pid == 0:
        try:
            syscalls.restrict()
            os._exit(0 if sum(range(10)) == 45 else 1)
        except BaseException:  # noqa: BLE001 -- the probe child exits, never returns
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        isolation.syscall_filter = True
    else:
        isolation.problems.append(
            "no system-call filter (seccomp): an escaped script could "
            "open sockets, signal other sandbox processes and fork"
        )


def limit_process(memory_mb: int, *, syscall_filter: bool) -> None:
    """The limits of one sandbox process: memory, no child processes, no files, no cores.
    Soft and hard alike, so that not even code that escaped the guards can raise them. With
    `syscall_filter` (the zygote found that it works), the system-call filter too."""
    _set_limit(resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    _set_limit(resource.RLIMIT_NPROC, 0)
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_FSIZE, 0)
    _set_limit(resource.RLIMIT_NOFILE, 16)
    _set_limit(resource.RLIMIT_CPU, LIFETIME_CPU_SECONDS, hard=LIFETIME_CPU_SECONDS)
    if syscall_filter:
        syscalls.restrict()


def limit_cpu(seconds: float) -> None:
    """A CPU-time backstop for the next request, for a script that defeats the trace function
    (SIGXCPU ends the process); below the lifetime limit, which never rises."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + seconds)
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (min(soft, hard), hard))


def _set_limit(which: int, value: int, *, hard: int | None = None) -> None:
    """Lower a limit to `value` (soft) and `hard` (default: `value` too), never raise it."""
    with contextlib.suppress(ValueError, OSError):
        _, current = resource.getrlimit(which)
        ceiling = value if hard is None else hard
        if current != resource.RLIM_INFINITY:
            value, ceiling = min(value, current), min(ceiling, current)
        resource.setrlimit(which, (value, ceiling))
