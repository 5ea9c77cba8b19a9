"""Loading a locked instance's workflow, running it to its next wait state, and writing it back.

Every operation on an instance follows the same shape (DESIGN section 3):
lock the row, load the workflow, change it, run engine steps, persist state, projections and
audit events — all inside the caller's transaction.

When a diagram script or expression fails (DESIGN section 8), the operation is not rolled
back: the task it belongs to is put in ERROR, the other branches run on, and
`persist_workflow` writes the instance in `incident` with an `incident` audit event naming the
element and the error. An operator fixes the variables and calls `retry_instance`, which runs
the failed task again (`retry_failed_tasks`). Per entry point:

- start_instance: the instance is created and stored in incident at the failing task.
- complete_human_task: the completion is kept; the post-script or later script that fails
  puts the instance in incident.
- a job result (service_jobs): a failing result mapping makes the job dead (its incident, as
  before: retrying calls the connector again); a failing post-script or later script is the
  incident of that task, and the job stays succeeded.
- `${...}` assignment values and connector parameters (evaluated while the instance is
  written) fail their user or service task the same way (`TaskScriptFailed`).
- Code that belongs to no task (a message correlation, a process completion condition)
  cannot become a task incident: it still raises `ScriptFailed` and the operation rolls back.
"""
import contextlib
import functools
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.db import transaction
from django.utils import timezone
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from engine.actors import Actor, as_user
from engine.bpmn.scripting import (
    ScriptError,
    UserLookup,
    describe_workflow_error,
    process_time_limit,
    script_context,
)
from engine.bpmn.serialization import workflow_from_state, workflow_to_state
from engine.exceptions import NotFound, ScriptFailed, TaskScriptFailed
from engine.jsonable import json_safe
from engine.models import ProcessInstance
from processes.models import ProcessDefinition

from .audit import record_event
from .definition_cache import definition_specs
from .event_projection import publish_thrown_events, sync_event_subscriptions, sync_timers
from .human_task_projection import sync_human_tasks
from .job_scheduling import schedule_service_jobs

# What Baton remembers on a failed task (in its internal data, so it survives persistence).
FAILURE = "baton_failure"
FAILURE_COUNT = "baton_failure_count"
# The states whose data is "the instance's variables" (ERROR: a failed task waiting for retry).
ACTIVE_TASK_STATES = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR
# A run stops retrying other branches after this many failures (each one fails a task).
_MAX_FAILURES_PER_RUN = 1000


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


@functools.lru_cache(maxsize=512)
def definition_script_time_limit(definition_id: int) -> float | None:
    """The process's own `scriptTimeLimit` (a definition never changes, so this is cached)."""
    key, xml = ProcessDefinition.objects.values_list("key", "bpmn_xml").get(pk=definition_id)
    return process_time_limit(xml, key)


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
def running_as(actor: Actor, instance: ProcessInstance | None = None) -> Iterator[None]:
    """Run workflow code on behalf of `actor` in `instance`: scripts see them as the current
    user and `instance_id()` as the instance, with the process's script time limit.

    A script failure that belongs to no task (and so cannot become an incident) raises
    `ScriptFailed`, which rolls the whole operation back. Engine steps (`run_engine_steps`,
    `attempt`) turn the failures of tasks into incidents instead.
    """
    limit = definition_script_time_limit(instance.definition_id) if instance else None
    try:
        with script_context(
            user=_script_user(actor),
            instance_id=str(instance.pk) if instance is not None else None,
            time_limit=limit,
            reuse_key=f"definition {instance.definition_id}" if instance is not None else None,
        ):
            yield
    except SpiffWorkflowException as exc:
        task = getattr(exc, "task", None)
        element = task.task_spec.bpmn_id if task is not None else ""
        message = describe_workflow_error(exc)
        raise ScriptFailed(
            f"{element + ': ' if element else ''}{message}",
            errors=[{"element_id": element, "message": message}],
        ) from None
    except ScriptError as exc:
        raise ScriptFailed(str(exc), errors=[{"element_id": "", "message": str(exc)}]) from None


# -- failed tasks ----------------------------------------------------------------------------

_NEW_FAILURES = "baton_new_failures"


def _new_failures(workflow: BpmnWorkflow) -> list[Task]:
    """The tasks that failed during the current operation (kept on the in-memory workflow
    object until persist_workflow has reported them)."""
    failures: list[Task] = vars(workflow).setdefault(_NEW_FAILURES, [])
    return failures


def _phase(task: Task, error: SpiffWorkflowException) -> str:
    """Where the task was when its code failed, which says how to run it again:
    "run" (its own script or condition: run it again), "complete" (a post-script: complete
    it again), "update" (a pre-script, a timer or event expression: update it again).
    persist_workflow adds "ready" (an assignment or connector parameter of a waiting task:
    make it ready again)."""
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


def fail_task(task: Task, message: str, phase: str) -> None:
    """Put `task` in ERROR and remember why; the operation's persist opens the incident."""
    task._set_state(TaskState.ERROR)
    count = int(task.internal_data.get(FAILURE_COUNT) or 0) + 1
    task.internal_data[FAILURE_COUNT] = count
    task.internal_data[FAILURE] = {
        "phase": phase, "message": message, "element_id": task.task_spec.bpmn_id or "",
        "attempts": count,
    }
    _new_failures(task.workflow.top_workflow).append(task)


def _fail_from(error: SpiffWorkflowException) -> bool:
    task = getattr(error, "task", None)
    if not isinstance(task, Task):
        return False
    fail_task(task, describe_workflow_error(error), _phase(task, error))
    return True


def attempt(action: Callable[[], Any]) -> bool:
    """Run `action` (running or completing a task); if a task's script fails, fail that task
    (see `fail_task`) and return False. Failures that name no task are raised."""
    try:
        action()
    except SpiffWorkflowException as exc:
        if not _fail_from(exc):
            raise
        return False
    return True


def run_engine_steps(workflow: BpmnWorkflow) -> None:
    """Run until only wait states remain (call inside `running_as`). A task whose script or
    expression fails is left in ERROR and the other branches run on."""
    for _ in range(_MAX_FAILURES_PER_RUN):
        try:
            workflow.refresh_timers()
            workflow.do_engine_steps()
            return
        except SpiffWorkflowException as exc:
            if not _fail_from(exc):
                raise
    raise ScriptFailed("Too many tasks of this instance failed in one run.")


def _all_tasks(workflow: BpmnWorkflow, state: int) -> list[Task]:
    tasks: list[Task] = workflow.get_tasks(state=state)
    for subprocess in workflow.subprocesses.values():
        tasks.extend(subprocess.get_tasks(state=state))
    return tasks


def failed_tasks(workflow: BpmnWorkflow) -> list[Task]:
    """The tasks in ERROR because their code failed (waiting for an operator's retry)."""
    return [t for t in _all_tasks(workflow, TaskState.ERROR) if FAILURE in t.internal_data]


def _update_again(task: Task) -> None:
    """Re-run a task's update (pre-script, timer or event expression) and that of the siblings
    its failure kept from being updated. The task's own data (with an operator's fixes) wins
    over what it inherits from its parent."""
    parent = task.parent
    saved = parent.data
    parent.data = {**parent.data, **task.data}
    try:
        task._set_state(TaskState.FUTURE)
        attempt(lambda: task.task_spec._update(task))
    finally:
        parent.data = saved
    for sibling in parent.children:
        if sibling is not task and sibling.has_state(TaskState.PREDICTED_MASK | TaskState.FUTURE):
            attempt(functools.partial(sibling.task_spec._update, sibling))


def retry_failed_tasks(workflow: BpmnWorkflow) -> list[Task]:
    """Run every failed task again, from where it failed, then the engine steps after it.
    Call inside `running_as`; returns the tasks retried."""
    retried = failed_tasks(workflow)
    for task in retried:
        phase = task.internal_data.pop(FAILURE).get("phase")
        if phase == "update":
            _update_again(task)
        elif phase == "complete":
            task._set_state(TaskState.STARTED)
            attempt(task.complete)
        else:
            task._set_state(TaskState.READY)
            if phase == "run" and task.task_spec.manual:
                # Its form was submitted already: run it on rather than ask again.
                attempt(task.run)
    run_engine_steps(workflow)
    return retried


# -- writing the instance -------------------------------------------------------------------

def workflow_variables(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The data a person would call 'the instance's variables' at this moment."""
    if workflow.is_completed():
        return dict(json_safe(workflow.data))
    merged: dict[str, Any] = dict(workflow.data)
    for task in workflow.get_tasks(state=ACTIVE_TASK_STATES):
        merged.update(task.data)
    return dict(json_safe(merged))


def _incident_from(task: Task) -> dict[str, Any]:
    failure = task.internal_data.get(FAILURE) or {}
    return {
        "kind": "script",
        "element_id": task.task_spec.bpmn_id or "",
        "task": str(task.id),
        "error": failure.get("message", ""),
        "error_code": "",
        "attempts": failure.get("attempts", 1),
        "since": timezone.now().isoformat(),
    }


_INSTANCE_FIELDS = ("state", "variables", "lock_version", "status", "completed_at", "incident")


def persist_workflow(
    instance: ProcessInstance, workflow: BpmnWorkflow, *, actor: Actor, fresh: bool = False
) -> ProcessInstance:
    """Write state, variables, status, the human-task projection, new service jobs (enqueued
    after commit), completion events and incidents.

    An assignment expression or connector parameter that fails while the projection or the
    jobs are written fails its task (`TaskScriptFailed`): the write starts again from a
    savepoint with that task in ERROR, so the instance is stored in incident."""
    before = {name: getattr(instance, name) for name in _INSTANCE_FIELDS}
    for _ in range(_MAX_FAILURES_PER_RUN):
        try:
            with transaction.atomic():
                _persist(instance, workflow, actor=actor, fresh=fresh)
        except TaskScriptFailed as exc:
            for name, value in before.items():
                setattr(instance, name, value)
            fail_task(exc.task, exc.detail, "ready")
            continue
        _new_failures(workflow).clear()
        return instance
    raise ScriptFailed("Too many tasks of this instance failed in one run.")


def _persist(
    instance: ProcessInstance, workflow: BpmnWorkflow, *, actor: Actor, fresh: bool
) -> None:
    was_finished = instance.is_finished
    failures = list(_new_failures(workflow))
    publish_thrown_events(instance, workflow, actor=actor)
    instance.state = workflow_to_state(instance.definition.dialect, workflow)
    instance.variables = workflow_variables(workflow)
    instance.lock_version += 1
    with running_as(actor, instance):
        active_jobs = schedule_service_jobs(instance, workflow, fresh=fresh)
    if instance.status == ProcessInstance.Status.TERMINATED:
        instance.incident = None  # a cancelled workflow also counts as completed
    elif workflow.is_completed():
        instance.status = ProcessInstance.Status.COMPLETED
        instance.completed_at = instance.completed_at or timezone.now()
        instance.incident = None
    elif failures and instance.status != ProcessInstance.Status.SUSPENDED:
        instance.status = ProcessInstance.Status.INCIDENT
        instance.incident = _incident_from(failures[-1])
    elif failures:
        instance.incident = _incident_from(failures[-1])  # resume finds it in incident
    elif instance.status in (ProcessInstance.Status.RUNNING, ProcessInstance.Status.WAITING):
        # Running while the engine itself has work in flight; waiting for the world otherwise.
        instance.status = (
            ProcessInstance.Status.RUNNING if active_jobs else ProcessInstance.Status.WAITING
        )
    instance.save()
    with running_as(actor, instance):
        sync_human_tasks(instance, workflow, actor=actor, fresh=fresh)
    sync_timers(instance, workflow, fresh=fresh)
    sync_event_subscriptions(instance, workflow, fresh=fresh)
    for task in failures:
        failure = task.internal_data.get(FAILURE) or {}
        record_event(instance, "incident", element_id=task.task_spec.bpmn_id or "", payload={
            "kind": "script", "task": str(task.id), "error": failure.get("message", ""),
            "attempts": failure.get("attempts", 1),
        })
    if instance.status == ProcessInstance.Status.COMPLETED and not was_finished:
        record_event(instance, "completed")
