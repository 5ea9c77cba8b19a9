"""Moving an instance's tokens by hand: reset it to an earlier task, or skip an active one.

Both check the operators group, run under the instance row lock, and write an audit event
with the actor and the active elements before and after. Work that a reset or skip removes is
cancelled: its human tasks (by the projection) and its service jobs (by the job scheduling),
so a late result of a removed job is dropped as stale.
"""

import uuid
from typing import Any

from django.db import transaction

from engine.actors import Person
from engine.bpmn.failures import run_engine_steps
from engine.bpmn.inspection import element_markers, is_skippable, reset_targets
from engine.bpmn.repair import reset_to_task, skip
from engine.bpmn.walks import element_id as element_of
from engine.bpmn.walks import find_task, state_name
from engine.exceptions import Conflict, InvalidInput, NotFound
from engine.jsonable import check_json_depth
from engine.models import HumanTask, ProcessInstance

from .audit import record_event
from .incidents import settle_incident
from .instance_store import open_run, persist_workflow
from .operators import lock_for_repair, lock_for_rewind
from .running import running_as


def reset_instance(
    *, instance_id: uuid.UUID | str, actor: Person, element_id: str
) -> ProcessInstance:
    """Take the instance back to the latest completed run of `element_id`: everything after
    it is undone (open tasks cancelled, running jobs cancelled) and the element runs again with
    the data it had then. Refused for elements that never completed."""
    with transaction.atomic(durable=True):
        instance = lock_for_rewind(instance_id, actor, "reset", "reset")
        run = open_run(instance)
        target = next((t for t in reset_targets(run.workflow) if t.element_id == element_id), None)
        if target is None:
            raise Conflict(
                f"{element_id!r} is not a completed task of this instance; "
                "choose one of the elements it has passed."
            )
        before = element_markers(run.workflow)["active"]
        reset_to_task(run.workflow, target.task_id)
        with running_as(actor, instance):
            run_engine_steps(run)
        settle_incident(instance, run.workflow)
        persist_workflow(instance, run, actor=actor)
        record_event(
            instance,
            "reset",
            actor=actor,
            element_id=element_id,
            payload={
                "task": target.task_id,
                "before": {"active": before},
                "after": {
                    "active": element_markers(run.workflow)["active"],
                    "status": instance.status,
                },
            },
        )
    return instance


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
        run = open_run(instance)
        task = find_task(run.workflow, task_id)
        if task is None:
            raise NotFound(f"The instance has no task {task_id}.")
        if not is_skippable(task):
            raise Conflict(
                f"{element_of(task) or 'This task'} is "
                f"{state_name(task)}; only an active task can be skipped."
            )
        before = element_markers(run.workflow)["active"]
        with running_as(actor, instance):
            skip(run, task, variables)
            run_engine_steps(run)
        instance.human_tasks.filter(
            spiff_task_id=task.id, status__in=HumanTask.ACTIVE_STATUSES
        ).update(status=HumanTask.Status.CANCELLED)
        settle_incident(instance, run.workflow)
        persist_workflow(instance, run, actor=actor)
        record_event(
            instance,
            "skipped",
            actor=actor,
            element_id=element_of(task),
            payload={
                "task": str(task.id),
                "variables": variables or {},
                "before": {"active": before},
                "after": {
                    "active": element_markers(run.workflow)["active"],
                    "status": instance.status,
                },
            },
        )
    return instance
