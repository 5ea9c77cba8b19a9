"""How much automatic work one operation may do before it must reach a wait state.

An operation (a start, a completed task, a message, a signal, a timer, a job's result, a
retry) runs the workflow's engine steps until only wait states remain. A loop of automatic
steps (a gateway that always leads back, a process whose call activity calls it again) never
gets there: without a budget the request never returns. The budget counts the tasks the
engine runs (`steps`) and the time spent running them (`seconds`); past either, the task
about to run is failed (`BudgetExceeded`). Call activities nest at most so deep
(`CallTooDeep`). Either way the instance is stored in incident at the element where it
stopped, and an operator can retry it once the diagram or its data is fixed.

The limits are the settings `BATON_STEP_LIMIT`, `BATON_STEP_TIME_LIMIT_SECONDS` and
`BATON_MAX_CALL_DEPTH`; a process may set its own step and time limits with the process
properties `stepLimit` and `stepTimeLimit` (like `scriptTimeLimit`).
"""

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.defaults import CallActivity
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.task import Task

from .outgoing_flows import element_of

DEFAULT_STEP_LIMIT = 10_000
DEFAULT_STEP_TIME_LIMIT_SECONDS = 10.0
DEFAULT_MAX_CALL_DEPTH = 20
STEP_LIMIT_PROPERTY = "stepLimit"
STEP_TIME_LIMIT_PROPERTY = "stepTimeLimit"


class CallTooDeep(WorkflowTaskException):
    """A call activity would nest its process deeper than `BATON_MAX_CALL_DEPTH`."""


def check_call_depth(task: Task) -> None:
    """Raise `CallTooDeep` if call activity `task` may not start its process: one that calls
    itself again and again (conditionally: unconditional ones are refused at deploy) would
    otherwise nest without end. Called where the subprocess is created, as the call
    activity's task is updated (the library runs the call activity's task only at its end)."""
    if not isinstance(task.task_spec, CallActivity):
        return
    depth = call_depth(task) + 1
    limit = max_call_depth()
    if depth > limit:
        raise CallTooDeep(
            f"Stopped at call activity {element_of(task.task_spec)}: it would call a process "
            f"{depth} levels deep, more than the limit of {limit} (BATON_MAX_CALL_DEPTH). A "
            "process that calls itself must stop calling sooner",
            task=task,
        )


class BudgetExceeded(WorkflowException):
    """The operation ran out of budget before `task` (READY, not run) could run."""

    def __init__(self, message: str, task: Task) -> None:
        super().__init__(message)
        self.task = task
        self.message = message


@dataclass(frozen=True)
class Limits:
    steps: int = DEFAULT_STEP_LIMIT
    seconds: float = DEFAULT_STEP_TIME_LIMIT_SECONDS


def default_limits() -> Limits:
    from django.conf import settings

    return Limits(
        steps=int(getattr(settings, "BATON_STEP_LIMIT", DEFAULT_STEP_LIMIT)),
        seconds=float(
            getattr(settings, "BATON_STEP_TIME_LIMIT_SECONDS", DEFAULT_STEP_TIME_LIMIT_SECONDS)
        ),
    )


def max_call_depth() -> int:
    from django.conf import settings

    return int(getattr(settings, "BATON_MAX_CALL_DEPTH", DEFAULT_MAX_CALL_DEPTH))


def process_limits(properties: dict[str, str]) -> Limits:
    """The default limits, with the process's own `stepLimit` / `stepTimeLimit` properties
    where it sets them (values that are not positive numbers are ignored)."""
    limits = default_limits()
    steps, seconds = limits.steps, limits.seconds
    with contextlib.suppress(KeyError, ValueError):
        steps = max(1, int(properties[STEP_LIMIT_PROPERTY]))
    with contextlib.suppress(KeyError, ValueError):
        seconds = max(0.001, float(properties[STEP_TIME_LIMIT_PROPERTY]))
    return Limits(steps=steps, seconds=seconds)


def call_depth(task: Task) -> int:
    """How many call activities the task's workflow runs inside (0 in the top process)."""
    depth = 0
    workflow: Any = task.workflow
    while getattr(workflow, "parent_task_id", None) is not None:
        parent = workflow.top_workflow.get_task_from_id(workflow.parent_task_id)
        if isinstance(parent.task_spec, CallActivity):
            depth += 1
        workflow = parent.workflow
    return depth


@dataclass(eq=False)
class Budget:
    """One operation's use of its limits (kept on its `Run`)."""

    limits: Limits = field(default_factory=Limits)
    steps: int = 0
    seconds: float = 0.0
    _since: float | None = None

    def __enter__(self) -> "Budget":
        self._since = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._since is not None:
            self.seconds += time.monotonic() - self._since
            self._since = None

    def spent_seconds(self) -> float:
        running = time.monotonic() - self._since if self._since is not None else 0.0
        return self.seconds + running

    def before_step(self, task: Task) -> None:
        """Called before the engine runs `task`: raise `BudgetExceeded` if it may not."""
        element = element_of(task.task_spec)
        if self.steps >= self.limits.steps:
            raise BudgetExceeded(
                f"Stopped at {element} after {self.steps:,} automatic steps in one operation "
                "without reaching a wait state: the diagram probably loops without end. Fix "
                f"the loop (or raise the process's {STEP_LIMIT_PROPERTY} property), then retry.",
                task,
            )
        if self.spent_seconds() > self.limits.seconds:
            raise BudgetExceeded(
                f"Stopped at {element} after {self.limits.seconds:g} s of automatic steps in "
                f"one operation ({self.steps:,} steps) without reaching a wait state. Fix the "
                f"diagram (or raise the process's {STEP_TIME_LIMIT_PROPERTY} property), then "
                "retry.",
                task,
            )
        self.steps += 1
