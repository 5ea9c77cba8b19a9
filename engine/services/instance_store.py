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

import contextlib
import uuid
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from engine.actors import Actor
from engine.bpmn.failures import MAX_FAILURES_PER_RUN, fail_task
from engine.bpmn.run import Run, start_run
from engine.bpmn.serialization import new_workflow, workflow_from_state, workflow_to_state
from engine.bpmn.types import Workflow
from engine.bpmn.walks import is_completed, workflow_variables
from engine.exceptions import Conflict, NotFound, ScriptFailed, TaskScriptFailed
from engine.models import HumanTask, ProcessInstance, ServiceJob
from engine.observability import context
from engine.rows import Columns, column, require_transaction, save_row, split, table
from engine.selectors.instances import WrittenRows, remember_rows
from processes.models import ProcessDefinition

from .audit import (
    events_in_one_insert,
    forget_pending_events,
    pending_events_mark,
    record_compensations,
    record_event,
)
from .definition_cache import DefinitionTraits, definition_specs, definition_traits
from .element_history import record_element_runs
from .event_projection import (
    EventRows,
    publish_thrown_events,
    sync_event_subscriptions,
    sync_timers,
)
from .failures import record_script_incidents, script_incident
from .human_task_projection import sync_human_tasks
from .instance_status import decide_status
from .job_scheduling import schedule_service_jobs
from .observed import instance_moved
from .running import definition_step_limits, running_as


@cache
def _locked_columns() -> tuple[Columns, Columns, Columns]:
    """The columns of the locking reads: the instance, its definition (less its large
    columns), a job."""
    return (
        Columns(ProcessInstance, "i"),
        Columns(ProcessDefinition, "d", leave_out=ProcessDefinition.BULK_FIELDS),
        Columns(ServiceJob, "j"),
    )


@cache
def _locking_read(target: str) -> str:
    """The statement that locks an instance row (`target` "instance" or "task": by its id or a
    human task's), or the instance's row and then a job's ("job", "job of kind"), and reads
    them with the instance's definition. Postgres locks a statement's rows in the order of its
    `FOR ... OF` list (the planner keeps the list's order for its row marks, which the
    executor's LockRows takes one after the other): the instance before its job, the order
    of every instance operation."""
    instance, definition, job = _locked_columns()
    columns = f"{instance.sql}, {definition.sql}"
    joined = (
        f"{table(ProcessInstance)} AS i JOIN {table(ProcessDefinition)} AS d "
        f"ON {column(ProcessDefinition, 'pk', 'd')} = {column(ProcessInstance, 'definition', 'i')}"
    )
    # Only names from the models' metadata are put together here; the keys are parameters.
    if target in ("instance", "task"):
        key = "%s"
        if target == "task":
            key = (
                f"(SELECT {column(HumanTask, 'instance', 't')} "  # noqa: S608
                f"FROM {table(HumanTask)} AS t WHERE {column(HumanTask, 'pk', 't')} = %s)"
            )
        return (
            f"SELECT {columns} FROM {joined} "  # noqa: S608
            f"WHERE {column(ProcessInstance, 'pk', 'i')} = {key} FOR NO KEY UPDATE OF i"
        )
    kind = f" AND {column(ServiceJob, 'kind', 'j')} = %s" if target == "job of kind" else ""
    return (
        f"SELECT {columns}, {job.sql} FROM {table(ServiceJob)} AS j "  # noqa: S608
        f"JOIN {joined} "
        f"ON {column(ProcessInstance, 'pk', 'i')} = {column(ServiceJob, 'instance', 'j')} "
        f"WHERE {column(ServiceJob, 'pk', 'j')} = %s{kind} FOR NO KEY UPDATE OF i, j"
    )


def _lock(target: str, key: uuid.UUID | str, *more: str) -> list[Any] | None:
    """The locked instance (its definition cached on it) and, for a job, the job; None when
    there is no such row (or `key` is no id at all)."""
    require_transaction()
    try:
        key = uuid.UUID(str(key))
    except ValueError:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_locking_read(target), [key, *more])
        row = cursor.fetchone()
    if row is None:
        return None
    instance_columns, definition_columns, job_columns = _locked_columns()
    parts = [instance_columns, definition_columns]
    if target.startswith("job"):
        parts.append(job_columns)
    built = split(row, *parts)
    instance, definition = built[0], built[1]
    ProcessInstance.definition.field.set_cached_value(instance, definition)
    if len(built) > 2:
        ServiceJob.instance.field.set_cached_value(built[2], instance)
    context.bind(instance=instance.pk)
    return [instance, *built[2:]]


def lock_instance(instance_id: uuid.UUID | str) -> ProcessInstance:
    """Take the instance's row lock (the first lock of every instance operation)."""
    locked = _lock("instance", instance_id)
    if locked is None:
        raise NotFound(f"There is no instance {instance_id}.")
    instance: ProcessInstance = locked[0]
    return instance


def lock_instance_and_job(
    job_id: uuid.UUID | str, *, missing: str, kind: str | None = None
) -> tuple[ProcessInstance, ServiceJob]:
    """Lock the job's instance, then the job, in one statement (`_locking_read`). NotFound
    with `missing` when there is no such job (of `kind`, when given)."""
    locked = _lock("job", job_id) if kind is None else _lock("job of kind", job_id, kind)
    if locked is None:
        raise NotFound(missing)
    instance, job = locked
    return instance, job


def lock_instance_of_task(task_id: uuid.UUID | str) -> ProcessInstance:
    """Take the row lock of the instance of human task `task_id` (one statement: a task
    never moves to another instance). Its task rows are read after the lock is held."""
    locked = _lock("task", task_id)
    if locked is None:
        raise NotFound(f"There is no task {task_id}.")
    instance: ProcessInstance = locked[0]
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
# An instance moved to another definition may still have rows its new definition never makes.
_EVERY_ROW = DefinitionTraits(
    timers=True, messages_or_signals=True, connector_tasks=True, writes_may_fail=True
)


def persist_workflow(
    instance: ProcessInstance,
    run: Run,
    *,
    actor: Actor,
    fresh: bool = False,
    active_tasks: list[HumanTask] | None = None,
    definition_changed: bool = False,
) -> ProcessInstance:
    """Write state, variables, status, the human-task projection, new service jobs (enqueued
    after commit), completion events and incidents. `fresh`: the instance is new (its row is
    inserted here if it was not saved yet). `active_tasks`: the instance's active human task
    rows, read by the caller under the instance's lock in this transaction.

    Only the rows the definition can have are looked at (`definition_traits`), unless
    `definition_changed` (a migration). The audit events of the operation are written with
    one INSERT (`events_in_one_insert`).

    An assignment expression or connector parameter that fails while the projection or the
    jobs are written fails its task (`TaskScriptFailed`): the write starts again from a
    savepoint with that task in ERROR, so the instance is stored in incident. A definition
    whose writes cannot fail so takes no savepoint."""
    before = {name: getattr(instance, name) for name in _INSTANCE_FIELDS}
    traits = _EVERY_ROW if definition_changed else definition_traits(instance.definition_id)
    with events_in_one_insert():
        for _ in range(MAX_FAILURES_PER_RUN):
            mark = pending_events_mark()
            try:
                with transaction.atomic() if traits.writes_may_fail else contextlib.nullcontext():
                    _persist(
                        instance, run, actor=actor, fresh=fresh, traits=traits, active=active_tasks
                    )
                    record_element_runs(
                        instance,
                        run,
                        actor=actor,
                        fresh=fresh,
                        was_finished=before["status"] in FINISHED_STATUSES,
                        variables_before=before["variables"],
                    )
            except TaskScriptFailed as exc:
                if not traits.writes_may_fail:
                    raise  # no savepoint to start again from: the operation rolls back
                forget_pending_events(mark)
                for name, value in before.items():
                    setattr(instance, name, value)
                active_tasks = None  # the rolled-back write changed them: read them again
                fail_task(run, exc.task, exc.detail, "ready")
                continue
            run.new_failures.clear()
            run.compensations.clear()  # audited (record_compensations)
            context.bind(instance=instance.pk)
            instance_moved(
                instance, before=before["status"], before_incident=before["incident"], fresh=fresh
            )
            return instance
    raise ScriptFailed("Too many tasks of this instance failed in one run.")


def _record_end(instance: ProcessInstance) -> None:
    """The audit event of an instance that ended in this write: completed, or terminated when
    it was being cancelled (its compensation done), with the asker as the actor. (An
    operator's terminate is finished before the write and records its own event.)"""
    if instance.status == ProcessInstance.Status.COMPLETED:
        record_event(instance, "completed")
    elif instance.status == ProcessInstance.Status.TERMINATED and instance.is_cancelling:
        record_event(
            instance,
            "terminated",
            actor=instance.cancel_requested_by,
            payload={"reason": instance.cancel_reason, "cancelled_with_compensation": True},
        )


def _persist(
    instance: ProcessInstance,
    run: Run,
    *,
    actor: Actor,
    fresh: bool,
    traits: DefinitionTraits,
    active: list[HumanTask] | None,
) -> None:
    was_finished = instance.is_finished
    failures = list(run.new_failures)
    workflow = run.workflow
    publish_thrown_events(instance, run, actor=actor)
    record_compensations(instance, run, actor=actor)
    instance.state = workflow_to_state(instance.definition.dialect, workflow)
    instance.variables = workflow_variables(workflow)
    instance.lock_version += 1
    active_jobs, jobs = 0, list[ServiceJob]()
    if traits.connector_tasks:
        with running_as(actor, instance):
            active_jobs, jobs = schedule_service_jobs(instance, workflow, fresh=fresh)
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
        cancelling=instance.is_cancelling,
    )
    if instance.status in FINISHED_STATUSES:
        instance.completed_at = instance.completed_at or timezone.now()
    save_row(instance)
    with running_as(actor, instance):
        tasks = sync_human_tasks(
            instance, workflow, actor=actor, fresh=fresh, active=active, opened_at=run.opened_at
        )
    timers = sync_timers(instance, run, fresh=fresh) if traits.timers else []
    waits = (
        sync_event_subscriptions(instance, run, fresh=fresh)
        if traits.messages_or_signals
        else EventRows()
    )
    record_script_incidents(instance, failures)
    if not was_finished:
        _record_end(instance)
    if fresh:  # every row of the new instance was written just now: answer from them
        remember_rows(instance, WrittenRows(tasks, jobs, timers, waits.messages, waits.signals))
