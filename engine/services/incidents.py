"""Incidents: opening one for a job that failed for good, clearing one when a repair removed
its cause, and the operator's retry of everything that failed."""

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from engine.actors import Person
from engine.bpmn.failures import failed_tasks, retry_failed_tasks
from engine.bpmn.types import Workflow
from engine.bpmn.walks import parked_task_ids
from engine.exceptions import Conflict
from engine.models import ProcessInstance, ServiceJob

from .audit import record_event
from .handover import hand_over_job_on_commit
from .instance_status import decide_status, has_active_jobs
from .instance_store import lock_instance, open_run, persist_workflow
from .operators import require_operator
from .running import running_as
from .variables import change_workflow_variables, check_variables

Status = ProcessInstance.Status


def open_job_incident(instance: ProcessInstance, job: ServiceJob) -> None:
    """The job failed for good (dead): the instance is in incident, with the job's error."""
    job.status = ServiceJob.Status.DEAD
    job.save()
    instance.refresh_from_db()  # a rolled-back savepoint may have left changes in memory
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
) -> ProcessInstance:
    """Re-run every dead job and every failed task of an instance in incident (after an
    operator fixed what made them fail, e.g. with `set_variables`, or here with `variables`
    and `remove`, applied first in the same transaction). Operators only.

    A failed task runs again at once, under this call's lock, from where it failed (its
    script, its pre- or post-script, its expression); if it fails again, the instance is back
    in incident with a new `incident` event. Dead jobs are enqueued again."""
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
        _retry_dead_jobs(instance, actor)
        instance.incident = None
        if not failed_tasks(run.workflow) and not changed:
            instance.status = decide_status(instance.status, active_jobs=has_active_jobs(instance))
            instance.save(update_fields=["status", "incident", "updated_at"])
            return instance
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
    return instance


def _retry_dead_jobs(instance: ProcessInstance, actor: Person) -> None:
    for job in (
        instance.jobs.select_for_update(no_key=True)
        .filter(status=ServiceJob.Status.DEAD)
        .order_by("pk")
    ):
        previous_attempts = job.attempt
        job.status = ServiceJob.Status.PENDING
        job.attempt = 0
        job.next_attempt_at = timezone.now()
        job.save()
        record_event(
            instance,
            "job_retried",
            actor=actor,
            element_id=job.element_id,
            payload={
                "job": str(job.id),
                "previous_attempts": previous_attempts,
                "last_error": job.last_error,
            },
        )
        hand_over_job_on_commit(str(job.id))
