"""Incidents: opening one for a job that failed for good, clearing one when a repair removed
its cause, and the operator's retry of everything that failed."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from engine.actors import Person
from engine.bpmn.failures import failed_tasks, retry_failed_tasks
from engine.bpmn.run import Run
from engine.bpmn.types import Workflow
from engine.bpmn.walks import parked_task, parked_task_ids
from engine.connectors import TASK_HEADERS_KEY
from engine.connectors.secrets import LITERALS_KEY
from engine.exceptions import Conflict, InvalidInput, TaskScriptFailed
from engine.models import ProcessInstance, ServiceJob

from . import observed
from .audit import record_event
from .element_history import end_open_run, reopen_run
from .external_task_queue import announce_external_task
from .handover import hand_over_job_on_commit
from .instance_status import decide_status, has_active_jobs
from .instance_store import lock_instance, open_run, persist_workflow
from .job_scheduling import evaluate_parameters
from .operators import require_operator
from .running import running_as
from .variables import change_workflow_variables, check_variables

Status = ProcessInstance.Status


@dataclass(frozen=True)
class RetriedJob:
    """A dead job sent again: which of its parameters the retry evaluated differently (names
    only: values may hold what a secret reference or the diagram's data put there)."""

    element_id: str
    element_name: str
    changed_parameters: list[str]


@dataclass(frozen=True)
class Retried:
    instance: ProcessInstance
    jobs: list[RetriedJob] = field(default_factory=list)


def open_job_incident(instance: ProcessInstance, job: ServiceJob) -> None:
    """The job failed for good (dead): the instance is in incident, with the job's error."""
    job.status = ServiceJob.Status.DEAD
    job.save()
    end_open_run(instance, job.spiff_task_id, "incident")
    instance.refresh_from_db()  # a rolled-back savepoint may have left changes in memory
    observed.job_incident(instance, had_incident=instance.incident is not None)
    instance.incident = {
        "kind": "job",
        "job": str(job.id),
        "element_id": job.element_id,
        "error_code": job.error_code,
        "error": job.last_error,
        "attempts": job.attempt,
        "since": timezone.now().isoformat(),
    }
    instance.status = decide_status(instance.status, incident=True)
    instance.save(update_fields=["status", "incident", "updated_at"])
    record_event(
        instance,
        "incident",
        element_id=job.element_id,
        payload={
            "kind": "job",
            "job": str(job.id),
            "error_code": job.error_code,
            "error": job.last_error,
            "attempts": job.attempt,
        },
    )


def settle_incident(instance: ProcessInstance, workflow: Workflow) -> None:
    """After a repair: an instance in incident whose failed tasks and dead jobs are all gone
    runs again (`persist_workflow` then decides between running and waiting)."""
    if not instance.incident and instance.status != Status.INCIDENT:
        return
    if failed_tasks(workflow):
        return
    dead = instance.jobs.filter(
        status=ServiceJob.Status.DEAD, spiff_task_id__in=parked_task_ids(workflow)
    )
    if dead.exists():
        return
    instance.incident = None
    # Out of incident; persist_workflow then decides between running and waiting.
    instance.status = decide_status(instance.status, active_jobs=True)


def retry_instance(
    *,
    instance_id: str,
    actor: Person,
    variables: dict[str, Any] | None = None,
    remove: Iterable[str] = (),
) -> Retried:
    """Re-run every dead job and every failed task of an instance in incident (after an
    operator fixed what made them fail, e.g. with `set_variables`, or here with `variables`
    and `remove`, applied first in the same transaction). Operators only.

    A failed task runs again at once, under this call's lock, from where it failed (its
    script, its pre- or post-script, its expression); if it fails again, the instance is back
    in incident with a new `incident` event. Dead jobs are enqueued again with their
    parameters evaluated again from the current variables (the fix is what gets sent); the
    job keeps its earlier round in `history`. A parameter that cannot be evaluated now
    refuses the whole retry (InvalidInput), changing nothing."""
    require_operator(actor, "retry the incidents of")
    variables, names = check_variables(variables or {}, remove)
    with transaction.atomic():
        instance = lock_instance(instance_id)
        if instance.status != Status.INCIDENT:
            raise Conflict(f"The instance is {instance.status}, not in incident.")
        run = open_run(instance)
        changed = change_workflow_variables(
            instance, run.workflow, actor=actor, variables=variables, remove=names
        )
        with running_as(actor, instance):  # parameters evaluated as the instance's code
            jobs = _retry_dead_jobs(instance, run, actor)
        instance.incident = None
        if not failed_tasks(run.workflow) and not changed:
            instance.status = decide_status(instance.status, active_jobs=has_active_jobs(instance))
            instance.save(update_fields=["status", "incident", "updated_at"])
            return Retried(instance, jobs)
        # Out of incident; persist_workflow then decides between running and waiting.
        instance.status = decide_status(instance.status, active_jobs=True)
        with running_as(actor, instance):
            for failure in retry_failed_tasks(run):
                record_event(
                    instance,
                    "task_retried",
                    actor=actor,
                    element_id=failure.element_id,
                    payload={"task": failure.task_id},
                )
        persist_workflow(instance, run, actor=actor)
    return Retried(instance, jobs)


def _retry_dead_jobs(instance: ProcessInstance, run: Run, actor: Person) -> list[RetriedJob]:
    return [
        retry_dead_job(instance, job, run, actor)
        for job in instance.jobs.select_for_update(no_key=True)
        .filter(status=ServiceJob.Status.DEAD)
        .order_by("pk")
    ]


def retry_dead_job(
    instance: ProcessInstance, job: ServiceJob, run: Run, actor: Person
) -> RetriedJob:
    """Send one dead job again (under its instance's lock), its parameters evaluated again
    and its earlier round kept in `history`; audited as `job_retried`."""
    changed = _reevaluate(job, run, actor)
    job.status = ServiceJob.Status.PENDING
    job.attempt = 0
    job.next_attempt_at = timezone.now()
    job.worker_id, job.locked_until = "", None
    job.callback_until = job.callback_received_at = None
    job.save()
    record_event(
        instance,
        "job_retried",
        actor=actor,
        element_id=job.element_id,
        payload={
            "job": str(job.id),
            "previous_attempts": job.history[-1]["attempts"],
            "last_error": job.last_error,
            "changed_parameters": changed,
        },
    )
    if job.kind == ServiceJob.Kind.EXTERNAL:
        announce_external_task(job.connector)  # its workers fetch it again
    else:
        hand_over_job_on_commit(str(job.id))
    reopen_run(instance, job.spiff_task_id, actor=actor)
    task = parked_task(run.workflow, job.spiff_task_id)
    name = (task.task_spec.bpmn_name or "") if task is not None else ""
    return RetriedJob(job.element_id, name, changed)


def _reevaluate(job: ServiceJob, run: Run, actor: Person) -> list[str]:
    """Evaluate the job's parameters again from its task's current data, keep the round that
    ends here in the job's history, and return the names of the parameters that changed.

    A changed request is a new request: it gets an idempotency key of its own, so that an API
    that remembers keys does not answer it with the old request's response."""
    task = parked_task(run.workflow, job.spiff_task_id)
    parameters = job.parameters
    if task is not None:
        try:
            parameters = evaluate_parameters(task)
        except TaskScriptFailed as exc:
            raise InvalidInput(
                f"Nothing was retried: a parameter of {job.element_id} cannot be evaluated from "
                f"the current variables ({exc.detail}). Fix the variables and retry."
            ) from None
    names = sorted((set(parameters) | set(job.parameters)) - {LITERALS_KEY, TASK_HEADERS_KEY})
    changed = [name for name in names if parameters.get(name) != job.parameters.get(name)]
    job.history = [
        *job.history,
        {
            "parameters": job.parameters,
            "attempts": job.attempt,
            "error": job.last_error,
            "error_code": job.error_code,
            "failed_at": job.updated_at.isoformat(),
            "retried_at": timezone.now().isoformat(),
            "retried_by": actor.get_username(),
            "changed": changed,
        },
    ]
    if changed:
        job.parameters = parameters
        job.idempotency_key = f"baton-job-{job.id}-{len(job.history)}"
    return changed
