"""Which sandbox process an operation's scripts run in.

An operation on an instance (one `scripting.script_context` block) takes a `Lease`. Its first
script gets a sandbox process, its later scripts reuse it, and when the operation ends the
process goes back to the pool of its reuse key, or exits:

- `BATON_SANDBOX_REUSE=definition` (the default): the key is the process definition (one
  version of one diagram). A sandbox process serves operations of that definition only, up to
  `MAX_OPERATIONS` of them; a script of another definition never runs in it. Nothing a script
  leaves reaches the next one anyway (immutable modules, fresh builtins and random state for
  every run); this bounds what a script that escaped all of that could see.
- `BATON_SANDBOX_REUSE=operation`: every operation gets a process that never ran anything,
  forked from the zygote (about 7 ms of CPU on the benchmark machine instead of 0.2 ms).

Work outside an instance gets a fresh process of its own. Spare processes are forked in
advance (`BATON_SANDBOX_SPARES`, after an operation, off its critical path), so a new
definition costs a message, not a fork.
"""

import atexit
import base64
import contextlib
import functools
import logging
import marshal
import os
import threading
from typing import Any

from engine.observability import metrics

from . import wire
from .client import Broken, Expired, SandboxProcess, Zygote
from .errors import SandboxUnavailable, ScriptLimitExceeded, time_limit_exceeded
from .limits import LIFETIME_CPU_SECONDS, MAX_TIME_LIMIT_SECONDS, cpu_backstop
from .policy import compile_script, failure_answer

logger = logging.getLogger("engine.sandbox")

SPARES = 1
MAX_IDLE = 8  # idle sandbox processes kept per engine process, over all definitions
MAX_OPERATIONS = 1000  # operations one sandbox process serves before it is replaced (or
# before its lifetime CPU limit is near)


def _setting(name: str, default: int) -> int:
    try:
        return max(0, int(os.environ.get(name, default)))
    except ValueError:
        return default


def reuse_scope() -> str:
    scope = os.environ.get("BATON_SANDBOX_REUSE") or "definition"
    return scope if scope in ("definition", "operation") else "definition"


def _worn_out(process: SandboxProcess) -> bool:
    """Whether a process has served enough: too many operations, or too little of its
    lifetime CPU left for the longest script (`jail.limit_process`)."""
    return process.operations >= MAX_OPERATIONS or process.cpu_seconds > (
        LIFETIME_CPU_SECONDS - cpu_backstop(MAX_TIME_LIMIT_SECONDS)
    )


class _Pool:
    """This engine process's zygote, spare processes and idle processes by reuse key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.zygote: Zygote | None = None
        self.spares: list[SandboxProcess] = []
        self.idle: list[tuple[str, SandboxProcess]] = []  # the most recently used last

    def current_zygote(self) -> Zygote:
        """The zygote, started (again) when needed; call with `lock` held."""
        if self.zygote is None or not self.zygote.alive:
            if self.zygote is not None:
                self.zygote.close()
            self._close_all()
            self.zygote = Zygote()
        return self.zygote

    def take(self, key: str | None, memory_mb: int) -> SandboxProcess:
        with self.lock:
            zygote = self.current_zygote()
            for index in range(len(self.idle) - 1, -1, -1):
                idle_key, process = self.idle[index]
                if idle_key == key and process.memory_mb == memory_mb:
                    del self.idle[index]
                    return process
            while self.spares:
                spare = self.spares.pop(0)  # the oldest: the most likely to have warmed up
                if spare.memory_mb == memory_mb:
                    return spare
                spare.close()
            try:
                return zygote.spawn(memory_mb)
            except Broken:
                zygote.close()
                self.zygote = None  # replaced on the next use
                raise

    def give_back(self, key: str | None, process: SandboxProcess) -> None:
        process.operations += 1
        with self.lock:
            if (
                key is not None
                and not process.closed
                and process.zygote is self.zygote
                and (not _worn_out(process))
            ):
                self.idle.append((key, process))
                while len(self.idle) > _setting("BATON_SANDBOX_IDLE", MAX_IDLE):
                    self.idle.pop(0)[1].close()
            else:
                process.close()
            self._refill(process.memory_mb)

    def _refill(self, memory_mb: int) -> None:
        zygote = self.zygote
        if zygote is None or not zygote.alive:
            return
        with contextlib.suppress(Broken):
            while len(self.spares) < _setting("BATON_SANDBOX_SPARES", SPARES):
                self.spares.append(zygote.spawn(memory_mb))

    def _close_all(self) -> None:
        for process in self.spares + [process for _, process in self.idle]:
            process.close()
        self.spares.clear()
        self.idle.clear()

    def shutdown(self) -> None:
        with self.lock:
            self._close_all()
            zygote, self.zygote = self.zygote, None
        if zygote is not None:
            zygote.close()

    def forget(self) -> None:
        """In a forked child (a Celery pool process): drop the parent's processes unused."""
        if self.zygote is not None:
            with contextlib.suppress(OSError):
                self.zygote.control.close()
        for process in self.spares + [process for _, process in self.idle]:
            process.close()


_pool = _Pool()


def _after_fork_in_child() -> None:
    global _pool
    _pool.forget()
    _pool = _Pool()


os.register_at_fork(after_in_child=_after_fork_in_child)


def shutdown() -> None:
    """Stop this process's zygote and every sandbox process (at exit, and for tests)."""
    _pool.shutdown()


atexit.register(shutdown)


def isolation() -> dict[str, Any]:
    """The isolation the sandbox runs with on this machine (starts the zygote if needed)."""
    with _pool.lock:
        return dict(_pool.current_zygote().isolation)


@functools.lru_cache(maxsize=2048)
def _marshalled(source: str, mode: str) -> str | dict[str, Any]:
    """The compiled script as marshal data in wire form, or the answer saying why it cannot
    run (compiled here once, not in every sandbox process)."""
    compiled = compile_script(source, mode)
    if isinstance(compiled, tuple):
        return failure_answer(compiled)
    return base64.b64encode(marshal.dumps(compiled)).decode("ascii")


class Lease:
    """The sandbox process of one operation (see the module's docstring); `reuse_key` None:
    a fresh process, used by this lease only."""

    def __init__(self, reuse_key: str | None = None) -> None:
        self.key = reuse_key if reuse_scope() == "definition" else None
        self.process: SandboxProcess | None = None

    def run(self, request: dict[str, Any], *, time_limit: float, memory_mb: int) -> dict[str, Any]:
        """Run one request (see `runner.run_request`) and return its answer.

        The request must already be in wire form (`wire.to_wire`) and carries `source` and
        `mode`; the compiled code is added here. Raises `ScriptTimeLimitExceeded` when the
        sandbox had to be killed, `ScriptLimitExceeded` when it died, `SandboxUnavailable`
        when none could be started."""
        code = _marshalled(request["source"], request["mode"])
        if isinstance(code, dict):
            return code
        payload = wire.dumps_wire({**request, "code": {"$bytes": code}})
        # The sandbox enforces the CPU-time limit itself; this wall-clock limit is the backstop
        # for a script stuck in one C call, with room for moving large data.
        wall_seconds = time_limit + max(2.0, time_limit) + len(payload) / 20_000_000
        for attempt in (1, 2):
            try:
                process = self._process(memory_mb)
                with metrics.timed(metrics.SCRIPT_DURATION, mode=str(request["mode"])):
                    answer = process.call(payload, wall_seconds)
            except Broken:
                self.process = None
                if attempt == 2:
                    raise SandboxUnavailable("The script sandbox keeps going away.") from None
                logger.warning("A script sandbox went away; starting a new one")
                continue
            except Expired:
                self.process = None
                raise time_limit_exceeded(time_limit, killed=True) from None
            except ScriptLimitExceeded:
                self.process = None
                raise
            return self._result(process, answer)
        raise AssertionError("unreachable")

    def _result(self, process: SandboxProcess, answer: bytes) -> dict[str, Any]:
        result: dict[str, Any] = wire.decode(answer)
        process.cpu_seconds = float(result.get("cpu") or 0.0)
        if result.get("restart"):
            process.close()  # it exits after running out of memory
            self.process = None
        return result

    def _process(self, memory_mb: int) -> SandboxProcess:
        if self.process is None or self.process.closed or self.process.memory_mb != memory_mb:
            self.close()
            self.process = _pool.take(self.key, memory_mb)
        return self.process

    def close(self) -> None:
        if self.process is not None:
            process, self.process = self.process, None
            _pool.give_back(self.key, process)
