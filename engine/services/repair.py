"""Moving an instance's tokens by hand: reset it to an earlier task, or skip an active one.

Both check the operators group, run under the instance row lock, and write an audit event
with the actor and the active elements before and after. Work that a reset or skip removes is
cancelled: its human tasks (by the projection) and its service jobs (by the job scheduling),
so a late result of a removed job is dropped as stale.
"""
import copy
import uuid
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from engine.actors import Person
from engine.bpmn.inspection import element_markers, every_task, is_skippable, reset_targets
from engine.exceptions import Conflict, InvalidInput, NotFound
from engine.jsonable import check_json_depth
from engine.models import HumanTask, ProcessInstance, ServiceJob
from engine.permissions import is_operator

from .audit import record_event
from .execution import (
    FAILURE,
    attempt,
    failed_tasks,
    load_workflow,
    lock_instance,
    persist_workflow,
    run_engine_steps,
    running_as,
)

Status = ProcessInstance.Status


def require_operator(actor: Person, action: str) -> None:
    if not is_operator(actor):
        raise PermissionDenied(f"Only operators may {action} instances.")


def lock_unfinished(instance_id: uuid.UUID | str, done: str) -> ProcessInstance:
    """Lock an instance that has not finished (finished ones are final): "it cannot be
    {done}" otherwise."""
    instance = lock_instance(instance_id)
    if instance.is_finished:
        raise Conflict(f"The instance is {instance.status}; it cannot be {done}.")
    return instance


def lock_for_repair(instance_id: uuid.UUID | str, actor: Person, action: str) -> ProcessInstance:
    """Check the operators group, then lock an unfinished instance."""
    require_operator(actor, action)
    return lock_unfinished(instance_id, "changed")


def settle_incident(instance: ProcessInstance, workflow: BpmnWorkflow) -> None:
    """After a repair: an instance in incident whose failed tasks and dead jobs are all gone
    runs again (`persist_workflow` then decides between running and waiting)."""
    if not instance.incident and instance.status != Status.INCIDENT:
        return
    if failed_tasks(workflow):
        return
    present = {task.id for task in every_task(workflow) if task.state == TaskState.STARTED}
    dead = instance.jobs.filter(status=ServiceJob.Status.DEAD, spiff_task_id__in=present)
    if dead.exists():
        return
    instance.incident = None
    if instance.status == Status.INCIDENT:
        instance.status = Status.RUNNING


def forget_removed_tasks(workflow: BpmnWorkflow, removed: list[Task]) -> None:
    """Stop the event listening of tasks a reset or migration took out of the tree, so that
    a timer refresh does not bring them back as waiting."""
    for task in removed:
        workflow.event_manager.remove_task(task)


def reset_instance(
    *, instance_id: uuid.UUID | str, actor: Person, element_id: str
) -> ProcessInstance:
    """Take the instance back to the latest completed run of `element_id`: everything after
    it is undone (open tasks cancelled, running jobs cancelled) and the element runs again with
    the data it had then. Refused for elements that never completed."""
    with transaction.atomic(durable=True):
        instance = lock_for_repair(instance_id, actor, "reset")
        workflow = load_workflow(instance)
        target = next((t for t in reset_targets(workflow) if t.element_id == element_id), None)
        if target is None:
            raise Conflict(f"{element_id!r} is not a completed task of this instance; "
                           "choose one of the elements it has passed.")
        before = element_markers(workflow)["active"]
        forget_removed_tasks(workflow, workflow.reset_from_task_id(uuid.UUID(target.task_id)))
        with running_as(actor, instance):
            run_engine_steps(workflow)
        settle_incident(instance, workflow)
        persist_workflow(instance, workflow, actor=actor)
        record_event(instance, "reset", actor=actor, element_id=element_id, payload={
            "task": target.task_id, "before": {"active": before},
            "after": {"active": element_markers(workflow)["active"], "status": instance.status},
        })
    return instance


def _complete_without_running(task: Task) -> None:
    """Mark the task completed and move its token on, without the task's own completion work
    (post-script, data outputs): what `Task.complete` does minus the spec's hook. A catching
    event stops listening, or the workflow's next timer refresh would make it wait again."""
    if isinstance(task.task_spec, CatchingEvent):
        task.workflow.top_workflow.event_manager.remove_task(task)
        task.task_spec.event_definition.reset(task)
    task._set_state(TaskState.COMPLETED)
    for child in task.children:
        if not child.has_state(TaskState.FINISHED_MASK):
            child.task_spec._update(child)
    task.workflow._task_completed_notify(task)


def _task_of(workflow: BpmnWorkflow, task_id: uuid.UUID | str) -> Task:
    """The task `task_id` of this workflow or of its subprocesses; `NotFound` for an id that
    is malformed, unknown or another instance's. (SpiffWorkflow's own lookup raises its
    TaskNotFoundException, and looks into one subprocess only.)"""
    try:
        wanted = uuid.UUID(str(task_id))
    except ValueError:
        wanted = None
    task = next((t for t in every_task(workflow) if t.id == wanted), None)
    if task is None:
        raise NotFound(f"The instance has no task {task_id}.")
    return task


def skip_task(
    *,
    instance_id: uuid.UUID | str,
    actor: Person,
    task_id: uuid.UUID | str,
    variables: dict[str, Any] | None = None,
) -> ProcessInstance:
    """Complete an active task without running it (no form, no connector call, no
    post-script, no retry of its failed script), with `variables` merged into its data, and
    run the instance on. Its open human task and service job are cancelled."""
    if variables is not None and not isinstance(variables, dict):
        raise InvalidInput("variables must be a JSON object.")
    check_json_depth(variables, "variables")
    with transaction.atomic(durable=True):
        instance = lock_for_repair(instance_id, actor, "skip tasks of")
        workflow = load_workflow(instance)
        task = _task_of(workflow, task_id)
        if not is_skippable(task):
            raise Conflict(f"{task.task_spec.bpmn_id or 'This task'} is "
                           f"{TaskState.get_name(task.state)}; only an active task can be skipped.")
        before = element_markers(workflow)["active"]
        task.internal_data.pop(FAILURE, None)
        task.data.update(copy.deepcopy(variables or {}))
        with running_as(actor, instance):
            attempt(lambda: _complete_without_running(task))
            run_engine_steps(workflow)
        instance.human_tasks.filter(
            spiff_task_id=task.id, status__in=HumanTask.ACTIVE_STATUSES
        ).update(status=HumanTask.Status.CANCELLED)
        settle_incident(instance, workflow)
        persist_workflow(instance, workflow, actor=actor)
        record_event(instance, "skipped", actor=actor, element_id=task.task_spec.bpmn_id, payload={
            "task": str(task.id), "variables": variables or {}, "before": {"active": before},
            "after": {"active": element_markers(workflow)["active"], "status": instance.status},
        })
    return instance
