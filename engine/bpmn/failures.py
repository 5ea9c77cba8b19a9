"""Failed tasks: a task whose script or expression fails is put in ERROR (the other branches
run on) and remembers why, so that an operator's retry can run it again from where it failed.

The failures of one operation are collected on its `Run`; the services write the incident.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from engine.exceptions import ScriptFailed

from .budget import BudgetExceeded
from .outgoing_flows import element_of
from .run import Run
from .scripting import describe_workflow_error

# What Baton remembers on a failed task (in its internal data, so it survives persistence).
FAILURE = "baton_failure"
FAILURE_COUNT = "baton_failure_count"
# A run stops retrying other branches after this many failures (each one fails a task).
MAX_FAILURES_PER_RUN = 1000


@dataclass(frozen=True)
class Failure:
    """Why a task failed, as the incident shows it."""

    task_id: str
    element_id: str
    message: str
    attempts: int
    error_code: str = ""  # a BPMN error that nothing caught


def failure_of(task: Task) -> Failure:
    failure = task.internal_data.get(FAILURE) or {}
    return Failure(
        str(task.id),
        element_of(task.task_spec),
        failure.get("message", ""),
        failure.get("attempts", 1),
        failure.get("error_code", ""),
    )


def forget_failure(task: Task) -> None:
    """The task will not be retried (it is skipped): drop what its failure left."""
    task.internal_data.pop(FAILURE, None)


def failed_element(error: BaseException) -> str:
    """The element whose code raised `error` ("" when it names none)."""
    task = getattr(error, "task", None)
    return element_of(task.task_spec) if isinstance(task, Task) else ""


def _phase(task: Task, error: SpiffWorkflowException) -> str:
    """Where the task was when its code failed, which says how to run it again:
    "run" (its own script or condition: run it again), "complete" (a post-script: complete
    it again), "update" (a pre-script, a timer or event expression: update it again).
    Writing the instance adds "ready" (an assignment or connector parameter of a waiting
    task: make it ready again)."""
    notes = " ".join(getattr(error, "notes", []) or [])
    if "Pre-Script" in notes:
        return "update"
    if "Post-Script" in notes:
        return "complete"
    if task.state == TaskState.ERROR:
        return "run"
    if task.state == TaskState.COMPLETED:
        return "complete"
    return "update"


def fail_task(run: Run, task: Task, message: str, phase: str, error_code: str = "") -> None:
    """Put `task` in ERROR and remember why; the operation's write opens the incident."""
    task._set_state(TaskState.ERROR)
    count = int(task.internal_data.get(FAILURE_COUNT) or 0) + 1
    task.internal_data[FAILURE_COUNT] = count
    task.internal_data[FAILURE] = {
        "phase": phase,
        "message": message,
        "element_id": element_of(task.task_spec),
        "attempts": count,
    }
    if error_code:
        task.internal_data[FAILURE]["error_code"] = error_code
    run.new_failures.append(task)


def _failed_task(run: Run, error: SpiffWorkflowException) -> Task | None:
    """The task whose code raised `error`. Some of the library's errors name only the task
    spec (an exclusive gateway none of whose conditions holds): the task is then the one of
    that spec that the failure has just put in ERROR."""
    task = getattr(error, "task", None)
    if isinstance(task, Task):
        return task
    spec = getattr(error, "task_spec", None)
    if spec is None:
        return None
    fresh = [
        t
        for t in _all_tasks(run.workflow, TaskState.ERROR)
        if t.task_spec is spec and FAILURE not in t.internal_data
    ]
    return fresh[0] if len(fresh) == 1 else None


def _fail_from(run: Run, error: SpiffWorkflowException) -> bool:
    task = _failed_task(run, error)
    if task is None:
        return False
    code = str(getattr(error, "error_code", "") or "")
    fail_task(run, task, describe_workflow_error(error), _phase(task, error), code)
    return True


def attempt(run: Run, action: Callable[[], Any]) -> bool:
    """Run `action` (running or completing a task); if a task's script fails, fail that task
    (see `fail_task`) and return False. Failures that name no task are raised."""
    try:
        action()
    except SpiffWorkflowException as exc:
        if not _fail_from(run, exc):
            raise
        return False
    return True


def run_engine_steps(run: Run) -> None:
    """Run until only wait states remain (call inside the services' `running_as`). A task
    whose script or expression fails is left in ERROR and the other branches run on. When
    the operation's budget (engine.bpmn.budget) runs out, the task about to run is failed
    and nothing more runs: the rest waits, READY, for the operator's retry."""
    with run.budget:
        for _ in range(MAX_FAILURES_PER_RUN):
            try:
                run.workflow.refresh_timers()
                run.workflow.do_engine_steps(will_complete_task=run.budget.before_step)
                return
            except BudgetExceeded as exc:
                fail_task(run, exc.task, exc.message, "run")
                return
            except SpiffWorkflowException as exc:
                if not _fail_from(run, exc):
                    raise
    raise ScriptFailed("Too many tasks of this instance failed in one run.")


def _all_tasks(workflow: BpmnWorkflow, state: int) -> list[Task]:
    """The tasks in `state` of the workflow and its subprocesses, each once (a walk from a
    workflow also steps into the subprocesses below it)."""
    tasks: dict[Any, Task] = {t.id: t for t in workflow.get_tasks(state=state)}
    for subprocess in workflow.subprocesses.values():
        tasks.update((t.id, t) for t in subprocess.get_tasks(state=state))
    return list(tasks.values())


def failed_tasks(workflow: BpmnWorkflow) -> list[Task]:
    """The tasks in ERROR because their code failed (waiting for an operator's retry)."""
    return [t for t in _all_tasks(workflow, TaskState.ERROR) if FAILURE in t.internal_data]


def _update_again(run: Run, task: Task) -> None:
    """Re-run a task's update (pre-script, timer or event expression) and that of the siblings
    its failure kept from being updated. The task's own data (with an operator's fixes) wins
    over what it inherits from its parent."""
    parent = task.parent
    saved = parent.data
    parent.data = {**parent.data, **task.data}
    try:
        task._set_state(TaskState.FUTURE)
        attempt(run, lambda: task.task_spec._update(task))
    finally:
        parent.data = saved
    for sibling in parent.children:
        if sibling is not task and sibling.has_state(TaskState.PREDICTED_MASK | TaskState.FUTURE):
            attempt(run, functools.partial(sibling.task_spec._update, sibling))


def retry_failed_tasks(run: Run) -> list[Failure]:
    """Run every failed task again, from where it failed, then the engine steps after it.
    Call inside `running_as`; returns the failures retried."""
    retried = failed_tasks(run.workflow)
    described = [failure_of(task) for task in retried]
    for task in retried:
        phase = task.internal_data.pop(FAILURE).get("phase")
        if phase == "update":
            _update_again(run, task)
        elif phase == "complete":
            task._set_state(TaskState.STARTED)
            attempt(run, task.complete)
        else:
            task._set_state(TaskState.READY)
            if phase == "run" and task.task_spec.manual:
                # Its form was submitted already: run it on rather than ask again.
                attempt(run, task.run)
    run_engine_steps(run)
    return described
