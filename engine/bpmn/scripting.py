"""Every diagram script and expression is compiled and evaluated through this module.

Keeping evaluation in one place is what lets a restricted environment replace the plain one
without touching the rest of the engine.
"""
import datetime
import decimal
import math
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment

# Names a diagram script may use without importing anything.
SCRIPT_GLOBALS: dict[str, Any] = {
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


def build_script_engine() -> PythonScriptEngine:
    """The script engine every workflow runs with."""
    return PythonScriptEngine(environment=TaskDataEnvironment(dict(SCRIPT_GLOBALS)))
