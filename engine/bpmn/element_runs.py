"""Which element runs an operation started and ended, from the workflow's task states.

An element run is one entry of an instance into a BPMN element (a task, gateway, event,
subprocess): it starts when its task leaves the predicted states (FUTURE, LIKELY, MAYBE) for
READY, WAITING or STARTED, and ends when the task is COMPLETED, CANCELLED (or interrupted by an
error boundary event: outcome "error") or fails (ERROR: outcome "incident"). An operation
snapshots the task states when it begins (`task_states`); `run_changes` compares them with the
workflow as the operation leaves it. SpiffWorkflow keeps only each task's latest state change
time, so a run that started and ended within one operation starts when its parent task (the
element before it) last changed, or when the operation began if that was earlier.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.inclusive_gateway import InclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import StandardLoopTask
from SpiffWorkflow.bpmn.specs.mixins.parallel_gateway import ParallelGateway
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .connector_tasks import ConnectorTaskMixin
from .event_subprocesses import is_event_subprocess_start
from .inspection import every_task

OPEN = TaskState.READY | TaskState.STARTED | TaskState.WAITING
ENDED = TaskState.COMPLETED | TaskState.CANCELLED | TaskState.ERROR

# task id -> (state, element id): what an operation found when it began.
TaskStates = dict[uuid.UUID, int]


@dataclass(frozen=True)
class RunChange:
    """One element run that started and/or ended in an operation."""

    task_id: uuid.UUID
    element_id: str
    element_type: str
    started_at: datetime | None  # None: it started in an earlier operation
    ended_at: datetime | None  # None: still open
    outcome: str  # "" while open; "completed", "cancelled", "error" or "incident"


def _is_element(task: Task) -> bool:
    spec = task.task_spec
    return bool(getattr(spec, "bpmn_id", None)) and not isinstance(spec, StandardLoopTask)


def _waits_beside(task: Task) -> bool:
    """A boundary event or an event subprocess's start waits beside its activity or scope:
    it runs only when its event happens (then it starts and completes at once). A joining
    gateway waits once per arriving path, and runs once, when it completes."""
    spec = task.task_spec
    return isinstance(spec, (BoundaryEvent, ParallelGateway, InclusiveGateway)) or (
        is_event_subprocess_start(task)
    )


def task_states(workflow: BpmnWorkflow) -> TaskStates:
    """The state of every element task now (taken when an operation begins)."""
    return {task.id: task.state for task in every_task(workflow) if _is_element(task)}


def element_type(task: Task) -> str:
    """The element's kind as SpiffWorkflow describes it ("User Task", "Exclusive Gateway")."""
    return str(getattr(task.task_spec, "description", "") or type(task.task_spec).__name__)


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _caught_error(task: Task) -> bool:
    """Whether the cancelled activity `task` was interrupted by an error boundary event."""
    parent = task.parent
    if parent is None:
        return False
    for sibling in parent.children:
        spec = sibling.task_spec
        if (
            sibling is not task
            and isinstance(spec, BoundaryEvent)
            and isinstance(getattr(spec, "event_definition", None), ErrorEventDefinition)
            and sibling.state & (TaskState.READY | TaskState.COMPLETED)
        ):
            return True
    return False


def _outcome(task: Task) -> str:
    if task.state == TaskState.COMPLETED:
        return "completed"
    if task.state == TaskState.ERROR:
        return "incident"
    return "error" if _caught_error(task) else "cancelled"


def _change(task: Task, was: int, opened_at: float) -> RunChange | None:
    """The run of `task` that started or ended since it was in state `was`, if any."""
    state = task.state
    if state == was:
        return None
    was_open = bool(was & OPEN)
    if state & OPEN:
        if was_open or _waits_beside(task):
            return None  # READY -> STARTED is the same run; an event waits beside
        start = _when(task.last_state_change)
        return RunChange(task.id, task.task_spec.bpmn_id, element_type(task), start, None, "")
    if not state & ENDED or (not was_open and state == TaskState.CANCELLED):
        return None  # a path not taken, or an event that never happened
    if was_open and _waits_beside(task):
        if state != TaskState.COMPLETED:
            return None  # its activity ended first: the event never happened
        was_open = False  # it happened: its run starts and ends now
    ended = task.last_state_change
    started = None
    if not was_open:
        parent = task.parent.last_state_change if task.parent is not None else opened_at
        started = _when(min(max(parent, opened_at), ended))
    kind = element_type(task)
    return RunChange(task.id, task.task_spec.bpmn_id, kind, started, _when(ended), _outcome(task))


def run_changes(before: TaskStates, workflow: BpmnWorkflow, opened_at: float) -> list[RunChange]:
    """The element runs that started or ended since `before` was taken (at `opened_at`)."""
    changes: list[RunChange] = []
    seen: set[uuid.UUID] = set()
    for task in every_task(workflow):
        if not _is_element(task):
            continue
        seen.add(task.id)
        change = _change(task, before.get(task.id, TaskState.FUTURE), opened_at)
        if change is not None:
            changes.append(change)
    for task_id, was in before.items():
        if task_id not in seen and was & OPEN:
            # Gone from the tree while open: an instance of a multi-instance activity (removed
            # once it completed) or the task of a subprocess that ended.
            changes.append(RunChange(task_id, "", "", None, _when(opened_at), "completed"))
    return changes


def process_id(workflow: BpmnWorkflow) -> str:
    """The id of the instance's (top) process."""
    return str(workflow.spec.name)


def _connector_specs(spec: Any, subprocess_specs: dict[str, Any]) -> list[ConnectorTaskMixin]:
    return [
        task_spec
        for process in [spec, *subprocess_specs.values()]
        for task_spec in process.task_specs.values()
        if isinstance(task_spec, ConnectorTaskMixin)
    ]


def element_connectors(spec: Any, subprocess_specs: dict[str, Any]) -> dict[str, str]:
    """Element id -> connector name of every connector task of a process and its
    subprocesses."""
    return {s.bpmn_id: s.connector for s in _connector_specs(spec, subprocess_specs)}


def element_result_variables(spec: Any, subprocess_specs: dict[str, Any]) -> dict[str, str]:
    """Element id -> the variable that takes the call's result ("" for result mappings only),
    of every connector task of a process and its subprocesses."""
    return {s.bpmn_id: s.result_variable for s in _connector_specs(spec, subprocess_specs)}
