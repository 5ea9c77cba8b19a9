"""Sandbox processes: the engine runs every diagram script and expression in one of these.

Why a separate process and not only RestrictedPython in-process: a trace function can stop a
Python loop, but not a single C call that runs for minutes or grabs gigabytes (`==`, `hash`,
`sorted` or `str` of a structure built by aliasing, `int()` of a huge Decimal...). A sandbox
process has a memory limit (RLIMIT_AS), no database settings or secrets in its environment
and no way to start processes (RLIMIT_NPROC 0), and the engine kills it when a script
outlives its time limit; the web process or worker that asked goes on serving others.

Each engine process keeps a small pool: a thread takes an idle sandbox (or starts one, which
costs about 0.1 s once) for one evaluation and gives it back. A killed or crashed sandbox is
replaced on the next use. Values cross as tagged JSON (`sandbox_wire`), never pickle.
"""
import atexit
import contextlib
import logging
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import sandbox_wire
from .sandbox import ScriptError, ScriptLimitExceeded, ScriptTimeLimitExceeded, frame_message

logger = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parents[2]
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from engine.bpmn.sandbox import main; main(sys.argv[2:])"
)
STARTUP_SECONDS = 30.0
IDLE_SANDBOXES_KEPT = 8


class SandboxUnavailable(ScriptError):
    """A sandbox process could not be started."""


class _Expired(Exception):
    pass


def _environment() -> dict[str, str]:
    # Nothing of the engine's environment: no database URL, no secrets.
    return {"PATH": os.defpath, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


class SandboxProcess:
    """One sandbox process and the pipes to it; used by one thread at a time."""

    def __init__(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb
        self.owner_pid = os.getpid()
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-E", "-s", "-B", "-c", _BOOT, str(_ROOT), str(memory_mb)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                cwd=str(_ROOT), env=_environment(), close_fds=True, start_new_session=True,
            )
        except OSError as exc:
            raise SandboxUnavailable(f"The script sandbox could not be started: {exc}") from exc
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in = self.process.stdin.fileno()
        self._out = self.process.stdout.fileno()
        try:
            ready = self._read_message(time.monotonic() + STARTUP_SECONDS)
        except _Expired:
            ready = None
        if ready != b'"ready"':
            self.kill()
            raise SandboxUnavailable("The script sandbox did not start.")
        _ALL.add(self)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, payload: bytes, wall_seconds: float, time_limit: float) -> bytes:
        """Send one request and wait for its answer at most `wall_seconds`."""
        try:
            self._write(frame_message(payload))
        except OSError as exc:
            self.kill()
            raise _Broken(f"the sandbox process went away ({exc})") from exc
        try:
            answer = self._read_message(time.monotonic() + wall_seconds)
        except _Expired:
            self.kill()
            raise ScriptTimeLimitExceeded(
                f"The script ran longer than its time limit of {time_limit:g} s and was "
                "stopped (its sandbox process was killed)."
            ) from None
        if answer is None:
            code = self.process.wait()
            raise ScriptLimitExceeded(
                "The script's sandbox process ended while running it "
                f"(exit status {code}): it probably used more than {self.memory_mb} MB of "
                "memory or too much CPU time."
            )
        return answer

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._in, view)
            view = view[written:]

    def _read_message(self, deadline: float) -> bytes | None:
        header = self._read_exactly(8, deadline)
        if header is None:
            return None
        return self._read_exactly(int.from_bytes(header, "big"), deadline)

    def _read_exactly(self, length: int, deadline: float) -> bytes | None:
        poller = select.poll()
        poller.register(self._out, select.POLLIN | select.POLLHUP | select.POLLERR)
        chunks = []
        while length:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                raise _Expired
            chunk = os.read(self._out, min(length, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        if self.owner_pid != os.getpid():
            return
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            self.process.wait(timeout=5)
        self.close_pipes()

    def close(self) -> None:
        """Let an idle sandbox exit: it stops when its input closes."""
        self.close_pipes()
        if self.owner_pid == os.getpid():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.process.wait(timeout=1)

    def close_pipes(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()


class _Broken(Exception):
    """The sandbox died before it read the request: safe to try again with a new one."""


_ALL: "weakref.WeakSet[SandboxProcess]" = weakref.WeakSet()
_lock = threading.Lock()
_idle: list[SandboxProcess] = []


def _forget_after_fork() -> None:
    # A forked child (a Celery pool process) must not use, or keep open, its parent's sandboxes.
    global _lock
    _lock = threading.Lock()
    for sandbox in list(_ALL):
        sandbox.close_pipes()
    _idle.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _close_idle() -> None:
    with _lock:
        idle = list(_idle)
        _idle.clear()
    for sandbox in idle:
        sandbox.close()


atexit.register(_close_idle)


@contextlib.contextmanager
def _checkout(memory_mb: int) -> Iterator[SandboxProcess]:
    sandbox = None
    with _lock:
        while _idle and sandbox is None:
            candidate = _idle.pop()
            if candidate.alive and candidate.memory_mb == memory_mb:
                sandbox = candidate
            else:
                candidate.close()
    if sandbox is None:
        sandbox = SandboxProcess(memory_mb)
    try:
        yield sandbox
    except BaseException:
        sandbox.kill()  # in an unknown state: never reused
        raise
    with _lock:
        if sandbox.alive and len(_idle) < IDLE_SANDBOXES_KEPT:
            _idle.append(sandbox)
            return
    sandbox.kill()


def run(request: dict[str, Any], *, time_limit: float, memory_mb: int) -> dict[str, Any]:
    """Run one request (see `sandbox.run_request`) in a sandbox process and return its answer.

    The request must already be in wire form (`sandbox_wire.to_wire`). Raises
    `ScriptTimeLimitExceeded` when the sandbox had to be killed, `ScriptLimitExceeded` when
    it died, `SandboxUnavailable` when none could be started.
    """
    payload = sandbox_wire.dumps_wire(request)
    # The sandbox enforces the CPU-time limit itself; this wall-clock limit is the backstop
    # for a script stuck in one C call, with room for moving large data.
    wall_seconds = time_limit + max(2.0, time_limit) + len(payload) / 20_000_000
    for attempt in (1, 2):
        try:
            with _checkout(memory_mb) as sandbox:
                answer = sandbox.call(payload, wall_seconds, time_limit)
                result: dict[str, Any] = sandbox_wire.decode(answer)
                if result.get("restart"):
                    sandbox.kill()  # it exits after running out of memory
            return result
        except _Broken:
            if attempt == 2:
                raise SandboxUnavailable("The script sandbox keeps going away.") from None
            logger.warning("A script sandbox went away; starting a new one")
    raise AssertionError("unreachable")
