"""Every diagram script and expression is compiled and evaluated through this module.

Keeping evaluation in one place is what lets a restricted environment replace the plain one
without touching the rest of the engine.
"""
import contextlib
import contextvars
import datetime
import decimal
import math
from collections.abc import Callable, Iterator
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment

# The person whose action is running the engine, as scripts see it (None for the system).
# Looked up lazily: most scripts never ask, and the lookup costs a query.
UserLookup = Callable[[], dict[str, Any] | None]
_current_user: contextvars.ContextVar[UserLookup | None] = contextvars.ContextVar(
    "baton_current_user", default=None
)


@contextlib.contextmanager
def acting_user(lookup: UserLookup | None) -> Iterator[None]:
    """Make `lookup()` what `get_current_user()` returns to scripts run inside the block."""
    token = _current_user.set(lookup)
    try:
        yield
    finally:
        _current_user.reset(token)


def get_current_user() -> dict[str, Any] | None:
    """Script helper (as in SpiffArena): the acting user's `username`, `email` and `groups`."""
    lookup = _current_user.get()
    user = lookup() if lookup is not None else None
    return dict(user) if user is not None else None


# Names a diagram script may use without importing anything.
SCRIPT_GLOBALS: dict[str, Any] = {
    "get_current_user": get_current_user,
    "datetime": datetime.datetime,
    "date": datetime.date,
    "timedelta": datetime.timedelta,
    "timezone": datetime.timezone,
    "Decimal": decimal.Decimal,
    "math": math,
}


class ScriptSyntaxError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def check_syntax(source: str, *, expression: bool) -> None:
    """Raise `ScriptSyntaxError` when a script (or an expression) is not valid Python."""
    try:
        compile(source, "<diagram>", "eval" if expression else "exec")
    except SyntaxError as exc:
        raise ScriptSyntaxError(f"Python syntax error: {exc.msg}", exc.lineno) from None


def evaluate_expression(task: Any, expression: str, extra: dict[str, Any] | None = None) -> Any:
    """Evaluate `expression` over the task's data (plus `extra` names), as gateways do."""
    return task.workflow.script_engine.evaluate(task, expression, external_context=extra)


def build_script_engine() -> PythonScriptEngine:
    """The script engine every workflow runs with."""
    from django.conf import settings

    names = {**SCRIPT_GLOBALS, "baton_url": settings.BATON_BASE_URL}
    return PythonScriptEngine(environment=TaskDataEnvironment(names))
