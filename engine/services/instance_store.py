"""Loading a locked instance's workflow and writing it back.

Every operation on an instance follows the same shape (DESIGN section 3):
lock the row (`lock_instance`), load the workflow into a `Run` (`open_run`), change it, run
engine steps, and write state, status, projections and audit events (`persist_workflow`) —
all inside the caller's transaction.

When a diagram script or expression fails (DESIGN section 8), the operation is not rolled
back: the task it belongs to is put in ERROR (engine.bpmn.failures), the other branches run
on, and `persist_workflow` writes the instance in `incident` with an `incident` audit event
naming the element and the error (services.failures). An operator fixes the variables and
calls `retry_instance` (services.incidents), which runs the failed task again. Per entry point:

- start_instance: the instance is created and stored in incident at the failing task.
- complete_human_task: the completion is kept; the post-script or later script that fails
  puts the instance in incident.
- a job result (services.job_outcomes): a failing result mapping makes the job dead (its
  incident, as before: retrying calls the connector again); a failing post-script or later
  script is the incident of that task, and the job stays succeeded.
- `${...}` assignment values and connector parameters (evaluated while the instance is
  written) fail their user or service task the same way (`TaskScriptFailed`).
- Code that belongs to no task (a message correlation, a process completion condition)
  cannot become a task incident: it still raises `ScriptFailed` and the operation rolls back.
"""

import uuid

from django.db import transaction
from django.utils import timezone

from engine.actors import Actor
from engine.bpmn.failures import MAX_FAILURES_PER_RUN, fail_task
from engine.bpmn.run import Run, start_run
from engine.bpmn.serialization import new_workflow, workflow_from_state, workflow_to_state
from engine.bpmn.types import Workflow
from engine.bpmn.walks import is_completed, workflow_variables
from engine.exceptions import Conflict, NotFound, ScriptFailed, TaskScriptFailed
from engine.models import ProcessInstance
from engine.observability import context

from .audit import record_event
from .definition_cache import definition_specs
from .element_history import record_element_runs
from .event_projection import publish_thrown_events, sync_event_subscriptions, sync_timers
from .failures import record_script_incidents, script_incident
from .human_task_projection import sync_human_tasks
from .instance_status import decide_status
from .job_scheduling import schedule_service_jobs
from .observed import instance_moved
from .running import definition_step_limits, running_as


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
    context.bind(instance=instance.pk)
    return instance


def lock_unfinished(instance_id: uuid.UUID | str, done: str) -> ProcessInstance:
    """Lock an instance that has not finished (finished ones are final): "it cannot be
    {done}" otherwise."""
    instance = lock_instance(instance_id)
    if instance.is_finished:
        raise Conflict(f"The instance is {instance.status}; it cannot be {done}.")
    return instance


def load_workflow(instance: ProcessInstance) -> Workflow:
    """The instance's workflow, to read (operations use `open_run`)."""
    spec, subprocess_specs = definition_specs(instance.definition_id)
    return workflow_from_state(instance.definition.dialect, instance.state, spec, subprocess_specs)


def open_run(instance: ProcessInstance) -> Run:
    """Begin an operation on the (locked) instance's workflow."""
    return start_run(load_workflow(instance), definition_step_limits(instance.definition_id))


def new_run(definition_id: int) -> Run:
    """Begin the first operation of a new instance of the definition."""
    spec, subprocess_specs = definition_specs(definition_id)
    return start_run(new_workflow(spec, subprocess_specs), definition_step_limits(definition_id))


FINISHED_STATUSES = (ProcessInstance.Status.COMPLETED, ProcessInstance.Status.TERMINATED)
_INSTANCE_FIELDS = ("state", "variables", "lock_version", "status", "completed_at", "incident")


def persist_workflow(
    instance: ProcessInstance, run: Run, *, actor: Actor, fresh: bool = False
) -> ProcessInstance:
    """Write state, variables, status, the human-task projection, new service jobs (enqueued
    after commit), completion events and incidents.

    An assignment expression or connector parameter that fails while the projection or the
    jobs are written fails its task (`TaskScriptFailed`): the write starts again from a
    savepoint with that task in ERROR, so the instance is stored in incident."""
    before = {name: getattr(instance, name) for name in _INSTANCE_FIELDS}
    for _ in range(MAX_FAILURES_PER_RUN):
        try:
            with transaction.atomic():
                _persist(instance, run, actor=actor, fresh=fresh)
                record_element_runs(
                    instance,
                    run,
                    actor=actor,
                    fresh=fresh,
                    was_finished=before["status"] in FINISHED_STATUSES,
                    variables_before=before["variables"],
                )
        except TaskScriptFailed as exc:
            for name, value in before.items():
                setattr(instance, name, value)
            fail_task(run, exc.task, exc.detail, "ready")
            continue
        run.new_failures.clear()
        context.bind(instance=instance.pk)
        instance_moved(
            instance, before=before["status"], before_incident=before["incident"], fresh=fresh
        )
        return instance
    raise ScriptFailed("Too many tasks of this instance failed in one run.")


def _persist(instance: ProcessInstance, run: Run, *, actor: Actor, fresh: bool) -> None:
    was_finished = instance.is_finished
    failures = list(run.new_failures)
    workflow = run.workflow
    publish_thrown_events(instance, run, actor=actor)
    instance.state = workflow_to_state(instance.definition.dialect, workflow)
    instance.variables = workflow_variables(workflow)
    instance.lock_version += 1
    with running_as(actor, instance):
        active_jobs = schedule_service_jobs(instance, workflow, fresh=fresh)
    completed = is_completed(workflow)
    if instance.status == ProcessInstance.Status.TERMINATED or completed:
        instance.incident = None  # a cancelled workflow also counts as completed
    elif failures:
        instance.incident = script_incident(failures[-1])  # a suspended one keeps it for resume
    instance.status = decide_status(
        instance.status,
        completed=completed,
        incident=instance.incident is not None,
        active_jobs=active_jobs > 0,
    )
    if instance.status == ProcessInstance.Status.COMPLETED:
        instance.completed_at = instance.completed_at or timezone.now()
    instance.save()
    with running_as(actor, instance):
        sync_human_tasks(instance, workflow, actor=actor, fresh=fresh)
    sync_timers(instance, run, fresh=fresh)
    sync_event_subscriptions(instance, run, fresh=fresh)
    record_script_incidents(instance, failures)
    if instance.status == ProcessInstance.Status.COMPLETED and not was_finished:
        record_event(instance, "completed")
