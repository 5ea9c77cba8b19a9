"""Running one script or expression inside a sandbox process, with a CPU-time deadline, and
encoding its answer for the engine."""

import decimal
import json
import marshal
import random
import resource
import statistics
import string
import sys
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

from . import kept, wire
from .allowed import Namespace, RunRandom
from .errors import TimeLimitSignal, time_limit_exceeded
from .limits import DEFAULT_TIME_LIMIT_SECONDS, MAX_DECIMAL_DIGITS, MAX_RESULT_BYTES
from .policy import SCRIPT_FILENAME, compile_script, failure_answer
from .safe_builtins import run_globals, script_locals, script_names
from .spiff_helpers import kkv_readers

# Pure-Python library code a script may call into is stopped as well; guards are not traced.
_TRACED_FILES = frozenset(
    {SCRIPT_FILENAME}
    | {getattr(module, "__file__", "") or "" for module in (statistics, random, string, json)}
    | {
        getattr(sys.modules.get(n), "__file__", "") or ""
        for n in ("json.encoder", "json.decoder", "fractions", "numbers")
    }
)


def run_limited(function: Callable[[], Any], seconds: float) -> Any:
    """Call `function` (which runs script code) with a CPU-time deadline.

    A trace function counts the lines the script executes and, every 64 of them, compares
    this thread's CPU time with the deadline. A script stuck inside one long C call cannot
    be stopped this way; the process's CPU limit and the engine's kill stop that.
    """
    deadline = time.thread_time() + seconds
    counter = 0
    stopped_at: list[int | None] = []  # a script that catches the signal is still stopped

    def trace_lines(frame: types.FrameType, event: str, arg: Any) -> Any:
        nonlocal counter
        counter += 1
        if not counter & 63 and time.thread_time() > deadline:
            in_script = frame.f_code.co_filename == SCRIPT_FILENAME
            stopped_at.append(frame.f_lineno if in_script else None)
            raise TimeLimitSignal(stopped_at[0])
        return trace_lines

    def trace_calls(frame: types.FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename in _TRACED_FILES:
            return trace_lines(frame, event, arg)
        return None

    previous = sys.gettrace()
    sys.settrace(trace_calls)
    try:
        result = function()
    except TimeLimitSignal:
        pass
    finally:
        sys.settrace(previous)
    if stopped_at:
        raise time_limit_exceeded(seconds, line=stopped_at[0])
    return result


def _code(request: dict[str, Any]) -> types.CodeType | tuple[str, str, int | None]:
    compiled = request.get("code")
    if isinstance(compiled, bytes):
        code = marshal.loads(compiled)  # noqa: S302 - compiled by the engine, not the script
        if isinstance(code, types.CodeType):
            return code
    return compile_script(str(request["source"]), str(request["mode"]))


def _keep(name: str, value: Any, reserved: set[str]) -> bool:
    """What TaskDataEnvironment keeps in task data after a script: not the helpers, not the
    external names, no functions; here also no modules and no sandbox machinery."""
    if name.startswith("_") or name in reserved:
        return False
    return not callable(value) and not isinstance(value, types.ModuleType | Namespace)


def run_request(request: dict[str, Any]) -> dict[str, Any]:
    """Run one script ("exec") or expression ("eval"); the answer carries the new task data
    or the expression's value."""
    compiled = _code(request)
    if isinstance(compiled, tuple):
        return failure_answer(compiled)
    RunRandom.renew()
    context: dict[str, Any] = request.get("context") or {}
    external: dict[str, Any] = request.get("external") or {}
    helpers = request.get("helpers") or {}
    names = script_names(helpers)
    stores = kkv_readers(helpers)  # not reserved: assigning a store's id writes the store
    seconds = float(request.get("time_limit") or DEFAULT_TIME_LIMIT_SECONDS)
    if request["mode"] == "eval":
        namespace = {**names, **external, **context, **stores, **run_globals()}
        value = run_limited(lambda: eval(compiled, namespace), seconds)  # noqa: S307
        return {"ok": True, "value": value}
    namespace = {**context, **names, **external, **stores, **run_globals()}
    reserved = set(names) | set(external)
    namespace["locals"] = script_locals(namespace, reserved)
    run_limited(lambda: exec(compiled, namespace), seconds)  # noqa: S102
    return {"ok": True, "context": {k: v for k, v in namespace.items() if _keep(k, v, reserved)}}


def _script_line(tb: types.TracebackType | None) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == SCRIPT_FILENAME:
            line = lineno
    return line


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, decimal.Overflow):
        return {
            "ok": False,
            "type": "ScriptLimitExceeded",
            "line": _script_line(exc.__traceback__),
            "message": "The script would build a decimal beyond 1E+"
            f"{MAX_DECIMAL_DIGITS}; diagram scripts may build decimals up to that size.",
        }
    args = [a for a in exc.args if isinstance(a, (str, int, float))]
    return {
        "ok": False,
        "type": type(exc).__name__,
        "message": str(exc),
        "args": args if len(args) == len(exc.args) else [str(exc)],
        "line": getattr(exc, "line", None) or _script_line(exc.__traceback__),
    }


def answer(request: dict[str, Any], memory_mb: int) -> tuple[bytes, bool]:
    """The encoded answer to one request, and whether this process should exit after it.
    Every answer says how much CPU time this process has used (`leases` retires a process
    that nears its lifetime limit)."""
    response, stop = respond(request, memory_mb)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    response["cpu"] = usage.ru_utime + usage.ru_stime
    return wire.encode(response, MAX_RESULT_BYTES), stop


def respond(request: dict[str, Any], memory_mb: int) -> tuple[dict[str, Any], bool]:
    """The answer to one request (what the script left is checked: `kept`)."""
    try:
        response = run_request(request)
    except MemoryError:
        return out_of_memory(memory_mb), True
    except Exception as exc:  # noqa: BLE001 -- the script's own errors, and the sandbox's refusals
        return _error(exc), False
    left = response.get("value") if "value" in response else response.get("context")
    try:
        kept.check(left, MAX_RESULT_BYTES)
    except kept.Unsupported as exc:
        where = "returned" if "value" in response else "left in the process data"
        return _refusal(
            "ScriptError",
            f"The script {where} {exc} ({_offender(response)}), which cannot be "
            "kept in the process data; use numbers, text, lists, dicts, dates or decimals.",
        ), False
    except (kept.TooLarge, RecursionError) as exc:
        return _refusal(
            "ScriptLimitExceeded",
            f"The script left data beyond the limits in "
            f"{_offender(response)}: {exc}. Diagram scripts may leave at most about "
            f"{MAX_RESULT_BYTES // 1_000_000} MB in all.",
        ), False
    return response, False


def out_of_memory(memory_mb: int) -> dict[str, Any]:
    return {
        "ok": False,
        "type": "ScriptLimitExceeded",
        "restart": True,
        "message": f"The script ran out of memory; diagram scripts may use at most {memory_mb} MB.",
    }


def _refusal(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "type": kind, "message": message}


def _offender(response: dict[str, Any]) -> str:
    """Which variable cannot be kept."""
    if "value" in response:
        return "the expression's value"
    for name, value in (response.get("context") or {}).items():
        try:
            kept.check(value, MAX_RESULT_BYTES)
        except (kept.NotKept, RecursionError):
            return f"variable {name!r}"
    return "the variables"
