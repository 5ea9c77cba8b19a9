"""Every diagram script and expression is compiled and evaluated through this module.

SpiffWorkflow calls `environment.evaluate()` / `environment.execute()`; Baton's environment
compiles the source with RestrictedPython and Baton's rules (`sandbox.policy`, once per
source) and sends the code and the task data to the operation's sandbox process
(`sandbox.leases`), where it runs with guards, a CPU-time limit and a memory limit
(`sandbox`). What a script assigns comes back into the task data, as with SpiffWorkflow's
TaskDataEnvironment: functions and modules are not kept. Plain expressions are evaluated
here (`plain_expression`).

What scripts may use (the documented helpers):
- `get_current_user()`: the acting user's `id`, `username`, `email` and `groups` (or None);
- `instance_id()`: the id of the process instance the script runs in (or None);
- `baton_url`: the base URL of this Baton;
- `datetime`, `date`, `timedelta`, `timezone`, `Decimal` and `math` without importing;
- `import` of datetime, decimal, json, math, random, statistics and string.

The time limit is `BATON_SCRIPT_TIME_LIMIT_SECONDS` (default 2 s), or the process's own
`scriptTimeLimit` property (camunda:, zeebe: or spiffworkflow:properties on bpmn:process).
"""

import ast
import contextlib
import contextvars
import datetime
import decimal
import logging
import math
import os
from collections.abc import Callable, Iterator
from functools import lru_cache
from types import CodeType
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import (
    BasePythonScriptEngineEnvironment,
)
from SpiffWorkflow.exceptions import SpiffWorkflowException

from .data_stores import KKVReader
from .expressions import ExpressionNotSupported, compile_expression
from .sandbox import kept
from .sandbox import wire as sandbox_wire
from .sandbox.errors import (
    SANDBOX_ERRORS,
    ScriptError,
    ScriptLimitExceeded,
    ScriptNotAllowed,
    ScriptTimeLimitExceeded,
)
from .sandbox.leases import Lease
from .sandbox.limits import (
    DEFAULT_TIME_LIMIT_SECONDS,
    MAX_RESULT_BYTES,
    MAX_TIME_LIMIT_SECONDS,
)
from .sandbox.policy import syntax_problem

__all__ = [
    "ScriptError",
    "ScriptLimitExceeded",
    "ScriptNotAllowed",
    "ScriptTimeLimitExceeded",
]

logger = logging.getLogger(__name__)

DEFAULT_MEMORY_LIMIT_MB = 512
TIME_LIMIT_PROPERTY = "scriptTimeLimit"
# Task data the engine sends into a sandbox (the sandbox limits what comes back itself).
_MAX_SENT_BYTES = 500_000_000

# The person whose action is running the engine, as scripts see it (None for the system).
# Looked up lazily: most scripts never ask, and the lookup costs a query.
UserLookup = Callable[[], dict[str, Any] | None]
_current_user: contextvars.ContextVar[UserLookup | None] = contextvars.ContextVar(
    "baton_current_user", default=None
)
_current_instance: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "baton_current_instance", default=None
)
_time_limit: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "baton_script_time_limit", default=None
)


class InstanceFacts:
    """What SpiffArena's helpers tell a script about its instance (engine.services gives
    one that asks the database, once per operation, only when a script names the helper)."""

    def initiator(self) -> dict[str, Any] | None:
        return None

    def last_users(self) -> dict[str, dict[str, Any]]:
        """Task element id -> the user who completed it last in this instance."""
        return {}

    def toplevel(self) -> dict[str, Any]:
        return {"process_instance_id": _current_instance.get(), "process_model_identifier": None}


_facts: contextvars.ContextVar[InstanceFacts | None] = contextvars.ContextVar(
    "baton_instance_facts", default=None
)
# The sandbox process of the running operation (see `sandbox.leases.Lease`).
_lease: contextvars.ContextVar[Lease | None] = contextvars.ContextVar(
    "baton_sandbox_lease", default=None
)


@contextlib.contextmanager
def acting_user(lookup: UserLookup | None) -> Iterator[None]:
    """Make `lookup()` what `get_current_user()` returns to scripts run inside the block."""
    token = _current_user.set(lookup)
    try:
        yield
    finally:
        _current_user.reset(token)


@contextlib.contextmanager
def script_context(
    *,
    user: UserLookup | None,
    instance_id: str | None = None,
    time_limit: float | None = None,
    reuse_key: str | None = None,
    facts: InstanceFacts | None = None,
) -> Iterator[None]:
    """What scripts run inside the block see as the current user and instance, and the time
    limit they run with (None: the configured default). The block is one operation: its
    scripts share one sandbox process, which serves only operations of the same `reuse_key`
    (the process definition; None: a fresh process of its own, see `sandbox.leases`)."""
    lease = Lease(reuse_key)
    tokens = (
        _current_user.set(user),
        _current_instance.set(instance_id),
        _time_limit.set(time_limit),
    )
    lease_token = _lease.set(lease)
    facts_token = _facts.set(facts)
    try:
        yield
    finally:
        _facts.reset(facts_token)
        _lease.reset(lease_token)
        lease.close()
        _time_limit.reset(tokens[2])
        _current_instance.reset(tokens[1])
        _current_user.reset(tokens[0])


def get_current_user() -> dict[str, Any] | None:
    """Script helper (as in SpiffArena): the acting user's `username`, `email` and `groups`."""
    lookup = _current_user.get()
    user = lookup() if lookup is not None else None
    return dict(user) if user is not None else None


def instance_id() -> str | None:
    """Script helper: the id of the instance whose script is running."""
    return _current_instance.get()


# Names a diagram script may use without importing anything (the sandbox has its own copies;
# these say which names they are, for the overwrite check and for documentation).
SCRIPT_GLOBALS: dict[str, Any] = {
    "get_current_user": get_current_user,
    "instance_id": instance_id,
    "datetime": datetime.datetime,
    "date": datetime.date,
    "timedelta": datetime.timedelta,
    "timezone": datetime.timezone,
    "Decimal": decimal.Decimal,
    "math": math,
}


def default_time_limit() -> float:
    from django.conf import settings

    configured: Any = getattr(settings, "BATON_SCRIPT_TIME_LIMIT_SECONDS", None)
    if configured is None:
        configured = os.environ.get("BATON_SCRIPT_TIME_LIMIT_SECONDS", DEFAULT_TIME_LIMIT_SECONDS)
    return _clamp_seconds(float(configured))


def current_time_limit() -> float:
    return _time_limit.get() or default_time_limit()


def memory_limit_mb() -> int:
    from django.conf import settings

    configured: Any = getattr(settings, "BATON_SCRIPT_MEMORY_LIMIT_MB", None)
    if configured is None:
        configured = os.environ.get("BATON_SCRIPT_MEMORY_LIMIT_MB", DEFAULT_MEMORY_LIMIT_MB)
    return max(64, int(configured))


def _clamp_seconds(seconds: float) -> float:
    return min(max(seconds, 0.01), MAX_TIME_LIMIT_SECONDS)


def process_time_limit(bpmn_xml: str, process_id: str) -> float | None:
    """The `scriptTimeLimit` property (seconds) of process `process_id`, if it sets one."""
    from .xml import process_properties

    value = process_properties(bpmn_xml, process_id).get(TIME_LIMIT_PROPERTY)
    if value is None:
        return None
    try:
        return _clamp_seconds(float(value))
    except ValueError:
        logger.warning(
            "Process %s: %s=%r is not a number of seconds; ignored",
            process_id,
            TIME_LIMIT_PROPERTY,
            value,
        )
    return None


class ScriptSyntaxError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def check_syntax(source: str, *, expression: bool) -> None:
    """Raise `ScriptSyntaxError` when a script (or an expression) is not valid Python.

    Parsed as the sandbox's restricted compiler parses it. Breaking a sandbox rule (an import
    outside the allow-list, a name starting with "_"...) is not a syntax error: such a script
    deploys, and fails its task with a clear message when it runs.
    """
    if expression:
        try:
            if compile_expression(source) is not None:
                return  # a Camunda expression (JUEL or FEEL), read by engine.bpmn.expressions
        except ExpressionNotSupported as exc:
            raise ScriptSyntaxError(str(exc), None) from None
    problem = syntax_problem(source, "eval" if expression else "exec")
    if problem is not None:
        raise ScriptSyntaxError(f"Python syntax error: {problem[0]}", problem[1])


# -- running in the sandbox -------------------------------------------------------------------

_BUILTIN_ERRORS = frozenset(
    {
        "ArithmeticError",
        "AssertionError",
        "AttributeError",
        "Exception",
        "ImportError",
        "IndexError",
        "KeyError",
        "LookupError",
        "NameError",
        "NotImplementedError",
        "OverflowError",
        "RecursionError",
        "RuntimeError",
        "StopIteration",
        "SyntaxError",
        "TypeError",
        "UnboundLocalError",
        "UnicodeError",
        "ValueError",
        "ZeroDivisionError",
    }
)


def _error_from(answer: dict[str, Any]) -> Exception:
    kind = str(answer.get("type") or "ScriptError")
    message = str(answer.get("message") or "")
    error: Exception
    if kind in SANDBOX_ERRORS:
        error = SANDBOX_ERRORS[kind](message)
    elif kind in _BUILTIN_ERRORS:
        import builtins

        args = answer.get("args")
        error = getattr(builtins, kind)(*(args if isinstance(args, list) else [message]))
    else:
        error = ScriptError(f"{kind}: {message}")
    error.script_line = answer.get("line")  # type: ignore[attr-defined]
    return error


def describe_workflow_error(error: BaseException) -> str:
    """A SpiffWorkflow error's message and notes as sentences (its own str() adds ". " after
    a message that already ends with a full stop: "... stopped at line 1.. Python ...")."""
    parts = [
        str(error.args[0]) if error.args else type(error).__name__,
        *getattr(error, "notes", []),
    ]
    sentences = [part.strip() for part in parts if part and part.strip()]
    return " ".join(s if s.endswith((".", "!", "?")) else s + "." for s in sentences)


def describe_error(error: BaseException) -> str:
    if isinstance(error, ScriptError):
        return str(error)
    return f"{type(error).__name__}: {error}"


# Expressions built only from these nodes cannot call, loop or reach an attribute, so they
# are evaluated here, without the round trip to a sandbox: gateway conditions, `${name}`
# values, `result["body"]["x"]` mappings. Their `+` is counted (`_PlainAdder`): one that would
# build more than a little is sent to the sandbox, whose limits and time limit then apply.
_PLAIN_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Subscript,
    ast.Tuple,
    ast.List,
    ast.IfExp,
)
# Characters or items that the `+` of one plain expression may build in all.
PLAIN_BUILD_BUDGET = 1_000_000
_PLAIN_ADD = "_baton_plain_add_"


class _PlainTooCostly(Exception):
    """A plain expression builds too much to be evaluated outside the sandbox."""


class _PlainAdder:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = PLAIN_BUILD_BUDGET

    def __call__(self, a: Any, b: Any) -> Any:
        if isinstance(a, str | bytes | list | tuple) and isinstance(b, str | bytes | list | tuple):
            self.left -= len(a) + len(b)
            if self.left < 0:
                raise _PlainTooCostly
        return a + b


class _CountedAdd(ast.NodeTransformer):
    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.op, ast.Add):
            return node
        call = ast.Call(
            func=ast.Name(_PLAIN_ADD, ast.Load()), args=[node.left, node.right], keywords=[]
        )
        return ast.copy_location(call, node)


PlainCode = tuple[CodeType, frozenset[str]]


@lru_cache(maxsize=4096)
def plain_expression(source: str) -> PlainCode | None:
    """Compiled code for a plain expression (see _PLAIN_NODES) and the names it reads, None
    for anything else."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, _PLAIN_NODES):
            return None
        # A list or tuple of names could nest shared values ([a, a]), whose comparison
        # takes exponential time in one C call: only constants go into a plain one.
        if isinstance(node, ast.List | ast.Tuple) and not all(
            isinstance(element, ast.Constant) for element in node.elts
        ):
            return None
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                return None
            names.add(node.id)
        if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.Add | ast.Sub):
            return None
    try:
        tree = ast.fix_missing_locations(_CountedAdd().visit(tree))
        return compile(tree, "<expression>", "eval"), frozenset(names)
    except (RecursionError, MemoryError, ValueError):
        return None  # nested too deeply for here: the sandbox says so


@lru_cache(maxsize=4096)
def plain_assignments(source: str) -> list[tuple[str, PlainCode]] | None:
    """`name = <plain expression>` lines (e.g. `outcome = "approved"`), compiled; None when
    the script is anything more."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not tree.body:
        return None
    assignments = []
    for statement in tree.body:
        if not (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
            and not statement.targets[0].id.startswith("_")
        ):
            return None
        code = plain_expression(ast.unparse(statement.value))
        if code is None:
            return None
        assignments.append((statement.targets[0].id, code))
    return assignments


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Runs scripts and expressions in a sandbox process, with TaskDataEnvironment's data
    semantics: a script's assignments land in the task data (keys deleted by the script are
    removed), helpers, external names, functions and modules do not.

    Plain expressions and plain assignment scripts (see `plain_expression`) are evaluated
    here, with the same names a sandboxed script sees; anything else, and a plain expression
    that reads a helper only the sandbox has or builds too much, goes to the sandbox.

    Task data that cannot cross into the sandbox (names starting with "_", values of types
    the wire does not carry) stays as it is and is invisible to the script."""

    def evaluate(
        self,
        expression: str,
        context: dict[str, Any],
        external_context: dict[str, Any] | None = None,
    ) -> Any:
        camunda = compile_expression(expression)
        if camunda is not None:  # JUEL or FEEL: interpreted here, over the same names
            names = {
                "baton_url": self.globals.get("baton_url") or "",
                **(external_context or {}),
                **{k: v for k, v in context.items() if isinstance(k, str)},
            }
            return _checked(camunda.evaluate(names))
        plain = plain_expression(expression)
        if plain is not None:
            scope = self._plain_scope(plain, context, external_context)
            if scope is not None:
                with contextlib.suppress(_PlainTooCostly, sandbox_wire.WireError):
                    return _checked(_eval_plain(plain, scope))
        answer, _ = self._run("eval", expression, context, external_context)
        return answer.get("value")

    def execute(
        self,
        script: str,
        context: dict[str, Any],
        external_context: dict[str, Any] | None = None,
    ) -> bool:
        self._check_for_overwrite(context, external_context or {})
        if self._execute_plain(script, context, external_context):
            return True
        answer, hidden = self._run("exec", script, context, external_context)
        result = answer.get("context") or {}
        kept = {k: context[k] for k in hidden if k not in result}
        context.clear()
        context.update(result)
        context.update(kept)
        return True

    def _execute_plain(
        self,
        script: str,
        context: dict[str, Any],
        external_context: dict[str, Any] | None,
    ) -> bool:
        """Run a plain assignment script here; False (nothing changed) when it must go to the
        sandbox."""
        assignments = plain_assignments(script)
        reserved = set(self.globals) | set(external_context or {})
        if assignments is None or any(name in reserved for name, _ in assignments):
            return False  # the sandbox leaves such names out of the task data
        results: dict[str, Any] = {}
        try:
            for name, plain in assignments:
                scope = self._plain_scope(plain, {**context, **results}, external_context)
                if scope is None:
                    return False
                results[name] = _eval_plain(plain, scope)
            _checked(results)
        except (_PlainTooCostly, sandbox_wire.WireError):
            return False
        context.update(results)
        return True

    def _plain_scope(
        self,
        plain: PlainCode,
        context: dict[str, Any],
        external_context: dict[str, Any] | None,
    ) -> dict[str, Any] | None:
        """The names a plain expression sees (as a sandboxed one would), or None when it reads
        a helper that only the sandbox has (a function, a class or a module)."""
        scope = {
            "baton_url": self.globals.get("baton_url") or "",
            **(external_context or {}),
            **context,
        }
        if any(name not in scope and name in SCRIPT_GLOBALS for name in plain[1]):
            return None
        return scope

    def _check_for_overwrite(
        self, context: dict[str, Any], external_context: dict[str, Any]
    ) -> None:
        """As TaskDataEnvironment: task data named like a helper would hide the helper."""
        overwrites = set(self.globals).intersection(context)
        overwrites.update(set(external_context).intersection(context))
        if overwrites:
            raise ValueError(
                "You have task data that overwrites a predefined function(s). Please change "
                f"the following variable or field name(s) to something else: {overwrites}"
            )

    def _run(
        self,
        mode: str,
        source: str,
        context: dict[str, Any],
        external_context: dict[str, Any] | None,
    ) -> tuple[dict[str, Any], list[Any]]:
        """The sandbox's answer, and the task-data keys the script could not see."""
        hidden = [k for k in context if not isinstance(k, str) or k.startswith("_")]
        visible = {k: v for k, v in context.items() if k not in hidden}
        try:
            context_wire, skipped = sandbox_wire.wire_items(visible, _MAX_SENT_BYTES)
            external_wire, _ = sandbox_wire.wire_items(external_context or {}, _MAX_SENT_BYTES)
            helpers = {
                "instance_id": instance_id(),
                "baton_url": str(self.globals.get("baton_url") or ""),
                "user": get_current_user() if "get_current_user" in source else None,
                **_spiff_helpers(source),
                "kkv": {k: v.entries for k, v in context.items() if isinstance(v, KKVReader)},
            }
            helpers_wire = sandbox_wire.to_wire(helpers, sandbox_wire.budget(_MAX_SENT_BYTES))
        except sandbox_wire.WireError as exc:
            raise ScriptLimitExceeded(
                f"The task data cannot be given to the script: {exc}."
            ) from None
        time_limit = current_time_limit()
        request = {
            "mode": mode,
            "source": source,
            "context": context_wire,
            "external": external_wire,
            "helpers": helpers_wire,
            "time_limit": time_limit,
        }
        lease = _lease.get()
        if lease is None:  # not inside an operation: a sandbox process of its own
            with contextlib.closing(Lease()) as own:
                answer = own.run(request, time_limit=time_limit, memory_mb=memory_limit_mb())
        else:
            answer = lease.run(request, time_limit=time_limit, memory_mb=memory_limit_mb())
        if not answer.get("ok"):
            raise _error_from(answer)
        return answer, hidden + skipped


def environment_name() -> str:
    """Baton's environment name (`BATON_ENVIRONMENT_NAME`), what `get_env()` answers."""
    from django.conf import settings

    return str(getattr(settings, "BATON_ENVIRONMENT_NAME", "") or "")


def _spiff_helpers(source: str) -> dict[str, Any]:
    """What SpiffArena's helpers answer, for the helpers `source` names (the lookups cost
    queries; most scripts never ask)."""
    facts = _facts.get() or InstanceFacts()
    found: dict[str, Any] = {}
    if "get_process_initiator_user" in source:
        found["initiator"] = facts.initiator()
    if "get_last_user_completing_task" in source:
        found["last_users"] = facts.last_users()
    if "get_toplevel_process_info" in source:
        found["toplevel"] = facts.toplevel()
    if "get_env" in source:
        found["env"] = environment_name()
    return found


def _checked(value: Any) -> Any:
    """`value`, if a script may leave it in the process data (the sandbox's own check)."""
    kept.check(value, MAX_RESULT_BYTES)
    return value


def _eval_plain(plain: PlainCode, scope: dict[str, Any]) -> Any:
    return eval(plain[0], {"__builtins__": {}, _PLAIN_ADD: _PlainAdder()}, scope)  # noqa: S307


class BatonScriptEngine(PythonScriptEngine):
    """SpiffWorkflow's engine with clearer errors: the reason an expression failed is part of
    the message, and the failing line of a script is named."""

    def evaluate(
        self, task: Any, expression: str, external_context: dict[str, Any] | None = None
    ) -> Any:
        try:
            # `${...}` JUEL and `= ...` FEEL are read by engine.bpmn.expressions (in the
            # environment); Python as it is.
            return self.environment.evaluate(expression, task.data, external_context)
        except SpiffWorkflowException as exc:
            exc.add_note(f"Error evaluating expression '{expression}'")
            raise
        except Exception as exc:
            raise WorkflowTaskException(
                f"Error evaluating expression '{expression}': {describe_error(exc)}",
                task=task,
                exception=exc,
            ) from exc

    def create_task_exec_exception(self, task: Any, script: str, err: Exception) -> Exception:
        line_number, error_line = self.get_error_line_number_and_content(script, err)
        if isinstance(err, SpiffWorkflowException):
            return super().create_task_exec_exception(task, script, err)
        error = WorkflowTaskException(
            describe_error(err),
            task=task,
            exception=err,
            line_number=line_number,
            error_line=error_line,
        )
        if line_number:
            error.add_note(f"Python script error on line {line_number}: '{error_line.strip()}'")
        return error

    def get_error_line_number_and_content(self, script: str, err: Exception) -> tuple[int, str]:
        line = getattr(err, "script_line", None) or getattr(err, "lineno", None) or 0
        lines = script.splitlines()
        if isinstance(line, int) and 0 < line <= len(lines):
            return line, lines[line - 1]
        return 0, ""


def evaluate_expression(task: Any, expression: str, extra: dict[str, Any] | None = None) -> Any:
    """Evaluate `expression` over the task's data (plus `extra` names), as gateways do."""
    return task.workflow.script_engine.evaluate(task, expression, external_context=extra)


def build_script_engine() -> PythonScriptEngine:
    """The script engine every workflow runs with."""
    from django.conf import settings

    names = {**SCRIPT_GLOBALS, "baton_url": settings.BATON_BASE_URL}
    return BatonScriptEngine(environment=SandboxEnvironment(names))
