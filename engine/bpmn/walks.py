"""Finding tasks in a workflow (and its subprocesses) and reading or changing their data,
for the services, which hold tasks only as opaque handles."""

import copy
import datetime
import uuid
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from engine.jsonable import json_safe

from .connector_tasks import ConnectorTaskMixin
from .event_subprocesses import is_event_subprocess_start, started_event_subprocess
from .inspection import every_task
from .multi_instance import visible_data
from .types import ACTIVE_TASK_STATES

# A timer task in one of these states has fired (and run, or is about to).
_FIRED_STATES = TaskState.READY | TaskState.STARTED | TaskState.COMPLETED


def element_id(task: Task) -> str:
    return str(task.task_spec.bpmn_id or "")


def state_name(task: Task) -> str:
    return str(TaskState.get_name(task.state))


def _tasks_in(workflow: BpmnWorkflow, state: int) -> list[Task]:
    # The library's walk of the top workflow descends into some subprocesses (one that had
    # completed and runs a compensation handler again, too): each task is listed once.
    tasks: dict[uuid.UUID, Task] = {t.id: t for t in workflow.get_tasks(state=state)}
    for subprocess in workflow.subprocesses.values():
        tasks.update((t.id, t) for t in subprocess.get_tasks(state=state))
    return list(tasks.values())


def find_task(workflow: BpmnWorkflow, task_id: uuid.UUID | str) -> Task | None:
    """The task `task_id` of this workflow or of its subprocesses; None for an id that is
    malformed, unknown or another instance's (the library's own lookup raises, and looks
    into one subprocess only)."""
    try:
        wanted = uuid.UUID(str(task_id))
    except ValueError:
        return None
    return next((t for t in every_task(workflow) if t.id == wanted), None)


def ready_task(workflow: BpmnWorkflow, task_id: uuid.UUID) -> Task | None:
    """The task, if it waits for input (READY)."""
    task = workflow.get_task_from_id(task_id)
    return task if task is not None and task.state == TaskState.READY else None


def parked_task(workflow: BpmnWorkflow, task_id: uuid.UUID) -> Task | None:
    """The task, if it is parked waiting for its service job (STARTED)."""
    task = workflow.get_task_from_id(task_id)
    return task if task is not None and task.state == TaskState.STARTED else None


def is_parked(task: Task) -> bool:
    return bool(task.state == TaskState.STARTED)


def parked_task_ids(workflow: BpmnWorkflow) -> set[uuid.UUID]:
    return {task.id for task in every_task(workflow) if task.state == TaskState.STARTED}


def started_connector_tasks(workflow: BpmnWorkflow) -> list[Task]:
    return [
        t
        for t in _tasks_in(workflow, TaskState.STARTED)
        if isinstance(t.task_spec, ConnectorTaskMixin)
    ]


def ready_human_tasks(workflow: BpmnWorkflow) -> dict[uuid.UUID, Task]:
    return {task.id: task for task in workflow.get_tasks(state=TaskState.READY, manual=True)}


def became_ready_at(task: Task) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(task.last_state_change, tz=datetime.UTC)


def timer_has_fired(workflow: BpmnWorkflow, task_id: uuid.UUID) -> bool:
    """Whether the timer task fired (a cycle that fired waits again, for its next time)."""
    task = workflow.get_task_from_id(task_id)
    if task is None:
        return False
    return bool(
        task.has_state(_FIRED_STATES)
        or task.state == TaskState.WAITING
        or started_event_subprocess(task)
    )


def workflow_variables(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The data a person would call 'the instance's variables' at this moment."""
    if workflow.is_completed():
        return dict(json_safe(workflow.data))
    merged: dict[str, Any] = dict(workflow.data)
    for task in workflow.get_tasks(state=ACTIVE_TASK_STATES):
        if not is_event_subprocess_start(task):  # it keeps the data its scope started with
            merged.update(visible_data(task))
    return dict(json_safe(merged))


def change_variables(workflow: BpmnWorkflow, variables: dict[str, Any], remove: list[str]) -> None:
    """Merge `variables` into (and drop `remove` from) the data of every active task and the
    workflow data. ERROR: a task whose script failed reads its fixed variables on retry."""
    for task in workflow.get_tasks(state=ACTIVE_TASK_STATES):
        task.data.update(copy.deepcopy(variables))
        for name in remove:
            task.data.pop(name, None)
    workflow.data.update(copy.deepcopy(variables))
    for name in remove:
        workflow.data.pop(name, None)


def set_start_data(workflow: BpmnWorkflow, variables: dict[str, Any] | None) -> None:
    """A new workflow's variables: later tasks copy the start task's data, so they go there
    before the first step."""
    workflow.task_tree.data.update(copy.deepcopy(variables or {}))


def set_initiator(workflow: BpmnWorkflow, username: str | None) -> None:
    """Camunda 7's `camunda:initiator`: the variable it names gets the username of whoever
    starts the instance (None when the system starts it)."""
    name = getattr(workflow.spec, "initiator", None)
    if name:
        workflow.task_tree.data[name] = username


def evaluate_over_data(task: Task, expression: str) -> Any:
    """Evaluate a Python expression over the task's data in the workflow's script sandbox
    (what the expression raises is raised)."""
    return task.workflow.script_engine.environment.evaluate(expression, task.data)


def submit_data(task: Task, submitted: dict[str, Any]) -> None:
    task.data.update(submitted)


def is_completed(workflow: BpmnWorkflow) -> bool:
    return bool(workflow.is_completed())
