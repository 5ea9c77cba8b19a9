"""An operator's hand on one service job: send it again now (requeue), cancel it, or move
its next attempt. Each runs under the job's instance row lock and is audited with the actor.

Cancel means: the job stops and its instance goes into incident ("Cancelled by operator
NAME", error code CANCELLED_BY_OPERATOR). The job becomes dead, like a job whose retries
ran out, so every repair of an incident applies to it: requeue it (or retry the instance)
to send it again, skip its task to go on without it, or terminate the instance. A call that
is in flight when it is cancelled may still reach the API; its result is dropped.
"""

import datetime
import uuid

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from engine.actors import Person
from engine.exceptions import Conflict, InvalidInput
from engine.models import ProcessInstance, ServiceJob
from engine.permissions import is_operator

from .audit import record_event
from .external_task_queue import announce_external_task
from .handover import hand_over_job_on_commit
from .incidents import open_job_incident, retry_dead_job, settle_incident
from .instance_status import decide_status, has_active_jobs
from .instance_store import lock_instance_and_job, open_run

Status = ServiceJob.Status
CANCELLED_CODE = "CANCELLED_BY_OPERATOR"
CANCELLABLE = (Status.PENDING, Status.RUNNING, Status.WAITING)
# A job due further ahead gets no delayed message (a broker keeps those badly for long):
# the sweep hands it over once it is due.
LONGEST_COUNTDOWN_SECONDS = 3600


def _lock_job(
    job_id: uuid.UUID | str, actor: Person, action: str
) -> tuple[ProcessInstance, ServiceJob]:
    """Check the operators group, then lock the job's instance and the job (in that order,
    as every instance operation does)."""
    if not is_operator(actor):
        raise PermissionDenied(f"Only operators may {action} jobs.")
    instance, job = lock_instance_and_job(job_id, missing=f"There is no job {job_id}.")
    if instance.is_finished:
        raise Conflict(f"The job's instance is {instance.status}; its jobs cannot change.")
    return instance, job


def requeue_job(*, job_id: uuid.UUID | str, actor: Person) -> ServiceJob:
    """Send the job now: a pending job (backing off, or whose message seems lost) is handed
    to the broker again with its next attempt now; a dead job is retried as the instance's
    retry would (parameters evaluated again, its round kept in history), and its instance
    leaves incident when nothing else failed."""
    with transaction.atomic(durable=True):
        instance, job = _lock_job(job_id, actor, "requeue")
        if job.status == Status.PENDING:
            before = job.next_attempt_at
            job.next_attempt_at = timezone.now()
            job.save(update_fields=["next_attempt_at", "updated_at"])
            _announce(job)
            record_event(
                instance,
                "job_requeued",
                actor=actor,
                element_id=job.element_id,
                payload={"job": str(job.id), "was_due": before.isoformat() if before else None},
            )
            return job
        if job.status != Status.DEAD:
            raise Conflict(f"The job is {job.status}; only a pending or dead job can be requeued.")
        run = open_run(instance)
        retry_dead_job(instance, job, run, actor)
        record_event(
            instance,
            "job_requeued",
            actor=actor,
            element_id=job.element_id,
            payload={"job": str(job.id), "was": Status.DEAD},
        )
        settle_incident(instance, run.workflow)
        if instance.incident is None:  # running while a connector job is in flight
            instance.status = decide_status(instance.status, active_jobs=has_active_jobs(instance))
        instance.save(update_fields=["status", "incident", "updated_at"])
    return job


def cancel_job(*, job_id: uuid.UUID | str, actor: Person, reason: str = "") -> ServiceJob:
    """Stop a pending, running or waiting job: it becomes dead and its instance goes into
    incident "Cancelled by operator" (see the module's docstring for what follows)."""
    with transaction.atomic(durable=True):
        instance, job = _lock_job(job_id, actor, "cancel")
        if job.status not in CANCELLABLE:
            raise Conflict(
                f"The job is {job.status}; only a pending, running or waiting job can be cancelled."
            )
        was = job.status
        who = actor.get_username() if actor is not None else "?"
        job.last_error = f"Cancelled by operator {who}" + (f": {reason}" if reason else "")
        job.error_code = CANCELLED_CODE
        job.worker_id, job.locked_until, job.locked_by = "", None, None
        job.callback_until = None
        record_event(
            instance,
            "job_cancelled",
            actor=actor,
            element_id=job.element_id,
            payload={"job": str(job.id), "was": was, "reason": reason},
        )
        open_job_incident(instance, job)
    return job


def set_job_due(
    *, job_id: uuid.UUID | str, actor: Person, due_at: datetime.datetime | None
) -> ServiceJob:
    """Move a pending job's next attempt to `due_at` (None: now). A time in the past counts
    as now; a message sent earlier for the job is refused by the worker while the job is
    not due (the claim checks the time), and a new one is sent for the new time (or, more
    than an hour ahead, by the sweep once the job is due)."""
    now = timezone.now()
    if due_at is not None and timezone.is_naive(due_at):
        raise InvalidInput("due_at needs a time zone (e.g. 2026-01-31T09:00:00Z).")
    when = max(due_at or now, now)
    with transaction.atomic(durable=True):
        instance, job = _lock_job(job_id, actor, "reschedule")
        if job.status != Status.PENDING:
            raise Conflict(f"The job is {job.status}; only a pending job has a next attempt.")
        before = job.next_attempt_at
        job.next_attempt_at = when
        job.save(update_fields=["next_attempt_at", "updated_at"])
        _announce(job, delay_seconds=(when - now).total_seconds())
        record_event(
            instance,
            "job_due_changed",
            actor=actor,
            element_id=job.element_id,
            payload={
                "job": str(job.id),
                "from": before.isoformat() if before else None,
                "to": when.isoformat(),
            },
        )
    return job


def _announce(job: ServiceJob, delay_seconds: float = 0) -> None:
    if job.kind == ServiceJob.Kind.EXTERNAL:
        if delay_seconds <= 0:
            announce_external_task(job.connector)  # fetches waiting for its topic get it
        return
    if delay_seconds <= LONGEST_COUNTDOWN_SECONDS:
        hand_over_job_on_commit(str(job.id), delay_seconds)
