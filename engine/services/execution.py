"""Loading a locked instance's workflow, running it to its next wait state, and writing it back.

Every operation on an instance follows the same shape (DESIGN section 3):
lock the row, load the workflow, change it, run engine steps, persist state, projections and
audit events — all inside the caller's transaction.
"""
import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

from django.utils import timezone
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState

from engine.actors import Actor, as_user
from engine.bpmn.scripting import UserLookup, acting_user
from engine.bpmn.serialization import workflow_from_state, workflow_to_state
from engine.exceptions import NotFound, ScriptFailed
from engine.models import ProcessInstance

from .audit import record_event
from .definition_cache import definition_specs
from .human_task_projection import sync_human_tasks
from .job_scheduling import schedule_service_jobs


def lock_instance(instance_id: uuid.UUID | str) -> ProcessInstance:
    """Take the instance's row lock (the first lock of every instance operation)."""
    instance = (
        ProcessInstance.objects.select_for_update(no_key=True, of=("self",))
        .select_related("definition")
        .defer("definition__spec", "definition__bpmn_xml", "definition__elements")
        .filter(pk=instance_id)
        .first()
    )
    if instance is None:
        raise NotFound(f"There is no instance {instance_id}.")
    return instance


def load_workflow(instance: ProcessInstance) -> BpmnWorkflow:
    spec, subprocess_specs = definition_specs(instance.definition_id)
    return workflow_from_state(instance.definition.dialect, instance.state, spec, subprocess_specs)


def _script_user(actor: Actor) -> UserLookup | None:
    user = as_user(actor)
    if user is None:
        return None

    def describe() -> dict[str, Any]:
        return {
            "id": user.pk,
            "username": user.get_username(),
            "email": user.email,
            "groups": sorted(user.groups.values_list("name", flat=True)),
        }

    return describe


@contextlib.contextmanager
def running_as(actor: Actor) -> Iterator[None]:
    """Run workflow code on behalf of `actor`: scripts see them as the current user, and a
    failing script becomes `ScriptFailed`, which rolls the whole operation back."""
    try:
        with acting_user(_script_user(actor)):
            yield
    except SpiffWorkflowException as exc:
        task = getattr(exc, "task", None)
        element = task.task_spec.bpmn_id if task is not None else ""
        raise ScriptFailed(
            f"{element + ': ' if element else ''}{exc}",
            errors=[{"element_id": element, "message": str(exc)}],
        ) from None


def run_engine_steps(workflow: BpmnWorkflow) -> None:
    """Run until only wait states remain (call inside `running_as`)."""
    workflow.refresh_timers()
    workflow.do_engine_steps()


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return result


def workflow_variables(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The data a person would call 'the instance's variables' at this moment."""
    if workflow.is_completed():
        return _json_safe(workflow.data)
    merged: dict[str, Any] = dict(workflow.data)
    for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING | TaskState.STARTED):
        merged.update(task.data)
    return _json_safe(merged)


def persist_workflow(
    instance: ProcessInstance, workflow: BpmnWorkflow, *, actor: Actor, fresh: bool = False
) -> ProcessInstance:
    """Write state, variables, status, the human-task projection, new service jobs (enqueued
    after commit) and completion events."""
    was_finished = instance.is_finished
    instance.state = workflow_to_state(instance.definition.dialect, workflow)
    instance.variables = workflow_variables(workflow)
    instance.lock_version += 1
    with running_as(actor):
        active_jobs = schedule_service_jobs(instance, workflow, fresh=fresh)
    if instance.status == ProcessInstance.Status.TERMINATED:
        pass  # a cancelled workflow also counts as completed; it stays terminated
    elif workflow.is_completed():
        instance.status = ProcessInstance.Status.COMPLETED
        instance.completed_at = instance.completed_at or timezone.now()
    elif instance.status in (ProcessInstance.Status.RUNNING, ProcessInstance.Status.WAITING):
        # Running while the engine itself has work in flight; waiting for the world otherwise.
        instance.status = (
            ProcessInstance.Status.RUNNING if active_jobs else ProcessInstance.Status.WAITING
        )
    instance.save()
    sync_human_tasks(instance, workflow, actor=actor, fresh=fresh)
    if instance.status == ProcessInstance.Status.COMPLETED and not was_finished:
        record_event(instance, "completed")
    return instance
