"""The engine's side of the sandbox: the zygote of an engine process and the sandbox processes
it forks (`leases` decides which operation uses which).

Why separate processes and not only RestrictedPython in-process: a trace function can stop a
Python loop, but not a single C call that runs for minutes or grabs gigabytes, and one missed
attribute in the Python-level guards must not hand out the engine's secrets. A sandbox
process is contained by the operating system (`jail`), has a memory limit and a CPU limit,
and is killed when a script outlives its time limit; the web process or worker that asked
goes on serving others.

Each engine process starts one zygote (`process_main`) on first use; the zygote forks a
sandbox process for each socket it is sent. Values cross as tagged JSON (`wire`), never
pickle; compiled code goes to the sandbox as marshal data, which only the engine writes.
"""

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import wire
from .errors import SandboxUnavailable, ScriptLimitExceeded
from .jail import SANDBOX_USER
from .limits import MAX_RESULT_BYTES

logger = logging.getLogger("engine.sandbox")

_ROOT = Path(__file__).resolve().parents[3]
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from engine.bpmn.sandbox.process_main import main; main(sys.argv[2:])"
)
STARTUP_SECONDS = 30.0
# The largest answer the engine reads: what a script may leave (limits.MAX_RESULT_BYTES of
# data) as JSON, where one character may take twelve bytes (a surrogate pair, \uXXXX\uXXXX).
MAX_ANSWER_BYTES = 12 * MAX_RESULT_BYTES + (1 << 20)


class Broken(Exception):
    """The sandbox went away before it read the request: safe to try again with a new one."""


def _environment() -> dict[str, str]:
    # Nothing of the engine's environment: no database URL, no secrets.
    return {"PATH": os.defpath, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def sandbox_user() -> str:
    return os.environ.get("BATON_SANDBOX_USER") or SANDBOX_USER


class Zygote:
    """The zygote process of this engine process and its control socket."""

    def __init__(self) -> None:
        self.owner_pid = os.getpid()
        self.lock = threading.Lock()
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-E", "-s", "-B", "-c", _BOOT, str(_ROOT), sandbox_user()],
                stdin=theirs.fileno(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd="/",
                env=_environment(),
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            self.control.close()
            raise SandboxUnavailable(f"The script sandbox could not be started: {exc}") from exc
        finally:
            theirs.close()
        self.isolation = self._wait_ready()

    def _wait_ready(self) -> dict[str, Any]:
        self.control.settimeout(STARTUP_SECONDS)
        try:
            message = self.control.recv(65536)
        except OSError:  # a timeout, too
            message = b""
        finally:
            self.control.settimeout(None)
        assert self.process.stderr is not None
        if not message:
            self.process.kill()
            detail = self.process.stderr.read().decode(errors="replace")[-2000:]
            self.process.stderr.close()
            self.process.wait()
            self.control.close()
            raise SandboxUnavailable(f"The script sandbox did not start. {detail}".strip())
        self.process.stderr.close()
        report: dict[str, Any] = json.loads(message)["isolation"]
        for problem in report["problems"]:
            logger.warning("Script sandbox runs with less isolation than it should: %s", problem)
        return report

    def spawn(self, memory_mb: int) -> "SandboxProcess":
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        command = json.dumps({"op": "fork", "memory_mb": memory_mb}).encode()
        try:
            with self.lock:
                socket.send_fds(self.control, [command], [theirs.fileno()])
        except OSError as exc:
            mine.close()
            raise Broken(f"the sandbox zygote went away ({exc})") from exc
        finally:
            theirs.close()
        return SandboxProcess(mine, self, memory_mb)

    def kill(self, pid: int) -> None:
        with contextlib.suppress(OSError), self.lock:
            self.control.send(json.dumps({"op": "kill", "pid": pid}).encode())

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Close the control socket: the zygote and its sandbox processes exit."""
        self.control.close()
        if self.owner_pid == os.getpid():
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class SandboxProcess:
    """One forked sandbox process: serves the leases `leases` gives it, one at a time, and
    exits when its socket closes."""

    def __init__(self, sock: socket.socket, zygote: Zygote, memory_mb: int) -> None:
        self.sock = sock
        self.zygote = zygote
        self.memory_mb = memory_mb
        self.pid: int | None = None
        self.closed = False
        self.operations = 0  # leases served
        self.cpu_seconds = 0.0  # as its last answer said

    def call(self, payload: bytes, wall_seconds: float) -> bytes:
        """Send one request and wait for its answer at most `wall_seconds`. Whatever goes
        wrong on the way kills the process: it is never left with an answer unread."""
        deadline = time.monotonic() + wall_seconds
        try:
            self.sock.settimeout(wall_seconds)
            self.sock.sendall(wire.frame(payload))
        except OSError as exc:
            self.close()
            raise Broken(f"the sandbox process went away ({exc})") from exc
        try:
            if self.pid is None:
                self._hello(deadline + STARTUP_SECONDS)
            answer = self._read_frame(deadline)
        except (Broken, Expired, ScriptLimitExceeded):
            raise
        except BaseException:
            self.kill()
            raise
        if answer is None:
            self.close()
            raise ScriptLimitExceeded(
                "The script's sandbox process ended while running it: it probably used more "
                f"than {self.memory_mb} MB of memory or too much CPU time."
            )
        return answer

    def _hello(self, deadline: float) -> None:
        """The first frame of a new process: its pid, once it has started."""
        try:
            hello = self._read_frame(deadline)
            self.pid = int(json.loads(hello or b"null")["pid"])
        except (Expired, TypeError, ValueError, KeyError) as exc:
            self.kill()
            raise Broken(f"the sandbox process did not start ({exc!r})") from None

    def _read_frame(self, deadline: float) -> bytes | None:
        header = self._read_exactly(wire.HEADER_SIZE, deadline)
        if header is None:
            return None
        length = wire.frame_length(header)
        if length > MAX_ANSWER_BYTES:  # no sandbox of ours sends that: do not read it
            self.kill()
            raise ScriptLimitExceeded("The script's sandbox process sent an oversized answer.")
        return self._read_exactly(length, deadline)

    def _read_exactly(self, length: int, deadline: float) -> bytes | None:
        chunks = []
        while length:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise Expired
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(min(length, 1 << 20))
            except TimeoutError:
                self.kill()
                raise Expired from None
            if not chunk:
                return None
            chunks.append(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def kill(self) -> None:
        if self.pid is not None and not self.closed:
            self.zygote.kill(self.pid)
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


class Expired(Exception):
    """The sandbox process did not answer in time (and has been killed)."""
