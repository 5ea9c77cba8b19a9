"""The zygote: a contained process that forks the sandbox processes of one engine process.

Started by `client.Zygote` as `python -c ... <user>`, with a SOCK_SEQPACKET control socket
as its standard input and nothing else of the engine's: no environment, no other file
descriptors. It imports everything a script may need, contains itself (`jail.contain`),
reports its isolation, then serves two commands:

- `{"op": "fork", "memory_mb": N}` with one socket passed along (SCM_RIGHTS): fork a sandbox
  process that serves requests on that socket until the engine closes it;
- `{"op": "kill", "pid": P}`: kill a sandbox process that outlived its time limit.

It exits when the control socket closes (the engine went away); being PID 1 of its own
namespace, its sandbox processes end with it. Which operations a sandbox process serves is
the engine's choice (`leases`): those of one process definition, or a single one.
"""

import codecs
import contextlib
import datetime
import decimal
import gc
import io
import json
import os
import random
import signal
import socket
import sys
import time
import unicodedata
from typing import Any

from . import jail, spiff_helpers, wire
from .limits import DEFAULT_TIME_LIMIT_SECONDS, cpu_backstop, decimal_context
from .runner import answer, out_of_memory

_CONTROL_FD = 0
_PRELOADED_ENCODINGS = (
    "ascii",
    "latin_1",
    "utf_16",
    "utf_32",
    "utf_8_sig",
    "utf_7",
    "cp1252",
    "idna",
    "punycode",
    "unicode_escape",
    "raw_unicode_escape",
)


def _preload() -> None:
    """What the standard library loads lazily, loaded before the file system goes away."""
    for encoding in _PRELOADED_ENCODINGS:
        codecs.lookup(encoding)
    datetime.datetime.strptime("2024-01-02", "%Y-%m-%d")  # imports _strptime
    time.localtime()  # reads the time zone
    unicodedata.normalize("NFC", "x")
    spiff_helpers.load_zones()  # the time zones of `ZoneInfo(...)`


# -- a sandbox process -----------------------------------------------------------------------


def _serve(fd: int, memory_mb: int, syscall_filter: bool) -> None:
    """Answer requests on `fd` until the engine closes it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    jail.limit_process(memory_mb, syscall_filter=syscall_filter)
    random.seed()  # not the zygote's state: every sandbox process draws its own
    # Scripts cannot reach the context (no getcontext); it is the same for all their runs.
    decimal.setcontext(decimal_context())
    stream = os.fdopen(fd, "rb", buffering=0)
    _send(fd, wire.frame(wire.dumps_wire({"pid": os.getpid()})))
    _warm_up(memory_mb)
    while True:
        try:
            message = wire.read_frame(stream)
            if message is None:
                return
            request = wire.decode(message)
        except MemoryError:  # the task data alone does not fit
            _send(fd, wire.frame(wire.dumps_wire(out_of_memory(memory_mb))))
            return
        jail.limit_cpu(cpu_backstop(float(request.get("time_limit") or DEFAULT_TIME_LIMIT_SECONDS)))
        payload, stop = answer(request, memory_mb)
        _send(fd, wire.frame(payload))
        if stop:
            return


_WARM_UP: dict[str, Any] = {
    "mode": "exec",
    "time_limit": 1.0,
    "context": {"lines": [{"qty": 2, "price": "1.5"}]},
    "source": "from decimal import Decimal\n"
    "total = sum(Decimal(x['price']) * x['qty'] for x in lines)\n"
    "label = f'{total:.2f} {len(lines)}'.upper()",
}


def _warm_up(memory_mb: int) -> None:
    """Run a small script before the first request: a forked process pays for the memory it
    shares with the zygote when it first writes to it. For a spare, forked in advance, this
    happens before any operation needs it; a process forked on demand pays it at once."""
    for _ in range(2):
        request = wire.decode(wire.dumps_wire(_WARM_UP))
        jail.limit_cpu(cpu_backstop(float(request["time_limit"])))
        wire.read_frame(io.BytesIO(wire.frame(answer(request, memory_mb)[0])))


def _send(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- the zygote ------------------------------------------------------------------------------


def _fork(fd: int, memory_mb: int, null: int, syscall_filter: bool) -> None:
    try:
        pid = os.fork()
    except OSError:
        os.close(fd)  # the engine sees no hello and forks again
        return
    if pid:
        os.close(fd)
        return
    try:
        for std in (0, 1, 2):
            os.dup2(null, std)
        os.closerange(3, fd)
        os.closerange(fd + 1, 1 << 16)
        _serve(fd, memory_mb, syscall_filter)
    finally:
        os._exit(0)


def _reap(signum: int, frame: object) -> None:
    """Collect ended sandbox processes (their CPU time then counts as the zygote's children's,
    where `bench/scripts.py` reads it)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _command_loop(control: socket.socket, null: int, syscall_filter: bool) -> None:
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 4096, 1)
        except InterruptedError:
            continue
        if not message:
            return
        command = json.loads(message)
        if command.get("op") == "fork" and fds:
            _fork(fds[0], int(command["memory_mb"]), null, syscall_filter)
        elif command.get("op") == "kill":
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(command["pid"]), signal.SIGKILL)
        for fd in fds[1:]:
            os.close(fd)


def prepare(user: str) -> jail.Isolation:
    """Load what scripts need, then contain this process (`jail.contain`)."""
    _preload()
    return jail.contain(user, os.path.dirname(os.__file__))


def main(argv: list[str]) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    isolation = prepare(argv[0] if argv else jail.SANDBOX_USER)
    control = socket.socket(fileno=_CONTROL_FD)
    signal.signal(signal.SIGCHLD, _reap)
    for ignored in (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
        signal.SIGPIPE,
        signal.SIGUSR1,
        signal.SIGUSR2,
    ):
        signal.signal(ignored, signal.SIG_IGN)  # it ends when its control socket closes
    gc.freeze()  # what the zygote holds is never collected in a child: fewer pages copied
    control.send(wire.dumps_wire({"ready": True, "isolation": isolation.as_dict()}))
    for std in (1, 2):
        os.dup2(null, std)
    _command_loop(control, null, isolation.syscall_filter)


if __name__ == "__main__":  # pragma: no cover - started by the client
    main(sys.argv[1:])
