"""Reading where an instance stands, per BPMN element: what ran how often, where its tokens
are, where it failed, and which elements an operator may reset to or skip."""

from collections import Counter
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import (
    BoundaryEvent,
    EventBasedGateway,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.exclusive_gateway import ExclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.inclusive_gateway import InclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import StandardLoopTask
from SpiffWorkflow.bpmn.specs.mixins.parallel_gateway import ParallelGateway
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .connector_tasks import ConnectorTaskMixin
from .event_subprocesses import is_event_subprocess_start
from .multi_instance import completions, instance_counts
from .timers import FIRED_AT

_GATEWAYS = (ExclusiveGateway, InclusiveGateway, ParallelGateway, EventBasedGateway)
TOKEN_STATES = TaskState.READY | TaskState.STARTED | TaskState.WAITING
FAILED_STATE = TaskState.ERROR


@dataclass(frozen=True)
class ElementTask:
    """One task of the instance, as an operator sees it in a list."""

    task_id: str
    element_id: str
    name: str
    state: str
    kind: str


def every_task(workflow: BpmnWorkflow) -> list[Task]:
    """All tasks of the workflow and of its subprocesses, finished ones included."""
    tasks = list(workflow.tasks.values())
    for subprocess in workflow.subprocesses.values():
        tasks.extend(subprocess.tasks.values())
    return tasks


def _is_element(task: Task) -> bool:
    return bool(getattr(task.task_spec, "bpmn_id", None))


def element_markers(workflow: BpmnWorkflow) -> dict[str, Any]:
    """Per element id: how many times it completed (a multi-instance activity: how many of its
    instances), where tokens wait, where it failed, and for each multi-instance activity still
    running its instances (`total`, `completed`, `active`)."""
    tasks = every_task(workflow)
    completed = Counter(element_id for _, element_id in completions(tasks))
    active: set[str] = set()
    failed: set[str] = set()
    instances: dict[str, dict[str, int]] = {}
    for task in tasks:
        if not _is_element(task):
            continue
        element_id = task.task_spec.bpmn_id
        if task.state & TOKEN_STATES:
            active.add(element_id)
            counts = instance_counts(task)
            if counts is not None:
                instances[element_id] = counts
        elif task.state == FAILED_STATE:
            failed.add(element_id)
    return {
        "completed": dict(completed),
        "active": sorted(active),
        "failed": sorted(failed),
        "instances": instances,
    }


def element_trace(workflow: BpmnWorkflow) -> list[str]:
    """The ids of the elements that completed, in the order they completed (a loop's element
    once per round, a multi-instance activity once per instance): what the conformance suite
    compares against a diagram's expected run."""
    # A standard loop's own task (which holds its rounds) carries the element's id too: the
    # element ran once per round, not once more. Multi-instance activities count as their
    # instances (engine.bpmn.multi_instance.completions).
    tasks = [
        task for task in every_task(workflow) if not isinstance(task.task_spec, StandardLoopTask)
    ]
    runs = completions(tasks)
    for task in tasks:
        # A cycle timer fires once per repetition, each time adding a path while its task
        # waits on for the next: each firing is a run of the element.
        # (An event subprocess's waiting start is not the element's run: its started
        # subprocess's start event is, once per firing.)
        if not _is_element(task) or is_event_subprocess_start(task):
            continue
        fired = task._get_internal_data(FIRED_AT)
        if fired:
            runs = [run for run in runs if run != (task.last_state_change, task.task_spec.bpmn_id)]
            runs.extend((when, task.task_spec.bpmn_id) for when in fired)
    runs.sort(key=lambda run: run[0])
    return [element_id for _, element_id in runs]


def _describe(task: Task) -> ElementTask:
    spec = task.task_spec
    return ElementTask(
        task_id=str(task.id),
        element_id=spec.bpmn_id,
        name=spec.bpmn_name or spec.bpmn_id,
        state=TaskState.get_name(task.state),
        kind=type(spec).__name__,
    )


def _is_resettable(task: Task) -> bool:
    spec = task.task_spec
    return _is_element(task) and not isinstance(spec, (*_GATEWAYS, StartEvent, BoundaryEvent))


def reset_targets(workflow: BpmnWorkflow) -> list[ElementTask]:
    """The elements the instance can go back to: the latest completed run of each task or
    intermediate event (gateways and start events are not places to stop at)."""
    latest: dict[str, Task] = {}
    for task in every_task(workflow):
        if task.state != TaskState.COMPLETED or not _is_resettable(task):
            continue
        seen = latest.get(task.task_spec.bpmn_id)
        if seen is None or task.last_state_change > seen.last_state_change:
            latest[task.task_spec.bpmn_id] = task
    ordered = sorted(latest.values(), key=lambda t: t.last_state_change)
    return [_describe(task) for task in ordered]


def is_skippable(task: Task) -> bool:
    """A task waiting for a person, a connector, an event, or an operator after a failure;
    not a gateway (it would lose a join) and not a subprocess (skip its tasks instead)."""
    spec = task.task_spec
    if not _is_element(task) or isinstance(spec, (*_GATEWAYS, SubWorkflowTask)):
        return False
    if getattr(spec, "ends_with_scope", False):
        return False  # an event subprocess's start waits beside the scope: nothing to skip
    if task.state == TaskState.STARTED:
        return isinstance(spec, ConnectorTaskMixin)
    return bool(task.state & (TaskState.READY | TaskState.WAITING | TaskState.ERROR))


def skippable_tasks(workflow: BpmnWorkflow) -> list[ElementTask]:
    return [_describe(task) for task in every_task(workflow) if is_skippable(task)]
