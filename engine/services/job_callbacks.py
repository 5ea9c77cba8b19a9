"""Callbacks of long-running calls: `POST /api/v1/jobs/{id}/callback/`.

An http task with `async_callback` whose API answers 202 parks its job (status `waiting`,
services.job_outcomes.await_callback) until the API posts the outcome to the job's callback
URL with the job's token (engine.connectors.callbacks), or until `callback_until`, when the
beat throws the BPMN error `CALLBACK_TIMEOUT` from the task (an incident when nothing
catches it; the operator's retry calls the API again).

The callback's body is the outcome:
- `{"error_code": "CODE", "error_message": "...", "details": ...}`: a BPMN error `CODE`;
- `{"failure": "what went wrong"}`: an incident (the operator's retry calls the API again);
- any other JSON value: the result, which the task's output mapping reads as
  `{"body": <the callback's body>, "accepted": <the 202 answer: status, headers, body>}`,
  so `result["body"]` means the final answer as it does for a call answered at once.

Each outcome is applied once: a repeated callback of the same call changes nothing and is
answered like the first (200, `duplicate: true`). A token that is not the job's is refused
(403) before anything is read; the token of an earlier call of the same job (one that was
retried since) gets 409.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from engine.connectors.callbacks import call_number, token_call
from engine.exceptions import Conflict
from engine.models import ProcessInstance, ServiceJob

from .audit import record_event
from .handover import hand_over_job_on_commit
from .instance_store import lock_instance_and_job
from .job_outcomes import (
    ACCEPTED,
    DEFERRED,
    EARLY_CALLBACK,
    Outcome,
    apply_locked_outcome,
    checked_error_code,
    throw_job_error,
)
from .job_runs import JOB_RUNNABLE_INSTANCE_STATUSES

TIMEOUT_CODE = "CALLBACK_TIMEOUT"
# Due waits expired per beat tick (each in a transaction of its own); the rest next tick.
EXPIRE_BATCH = 100


@dataclass(frozen=True)
class CallbackReceipt:
    job_id: str
    status: str  # the job's status after the callback
    duplicate: bool  # the same call's outcome had already come: nothing changed


def _outcome(body: Any) -> tuple[Outcome, str]:
    """The outcome a callback body reports, and its kind (result, error, failure)."""
    if isinstance(body, dict) and "error_code" in body:
        code = checked_error_code(body["error_code"])
        message = body.get("error_message")
        return (
            Outcome(
                error_code=code,
                error_message=str(message if message is not None else "")[:2000],
                error_details=body.get("details"),
            ),
            "error",
        )
    if isinstance(body, dict) and "failure" in body:
        text = str(body["failure"] or "").strip()[:2000] or "(no reason given)"
        return Outcome(incident=f"The called API reported a failure: {text}"), "failure"
    return Outcome(result=body), "result"


def _locked_job(job_id: uuid.UUID | str) -> tuple[ProcessInstance, ServiceJob]:
    return lock_instance_and_job(
        job_id, missing=f"There is no job {job_id}.", kind=ServiceJob.Kind.CONNECTOR
    )


def receive_job_callback(*, job_id: uuid.UUID | str, token: str, body: Any) -> CallbackReceipt:
    """Apply the outcome a called API posts for the job it accepted. Refused with
    PermissionDenied (nothing read) when `token` is not the job's."""
    call = token_call(str(job_id), token)
    if call is None:
        raise PermissionDenied("The callback token is not valid for this job.")
    outcome, kind = _outcome(body)
    with transaction.atomic(durable=True):
        instance, job = _locked_job(job_id)
        if call != call_number(len(job.history), job.attempt):
            raise Conflict("The token belongs to an earlier call of this job, which was retried.")
        if job.callback_received_at is not None:
            return CallbackReceipt(str(job.id), job.status, duplicate=True)
        # Before the 202 was recorded: the call is running, or its worker recorded a transient
        # error (a read timeout after the API had accepted the work) and the job waits for its
        # next attempt. Either way the callback is kept, and the next claim applies it
        # instead of calling again (`ClaimedJob.answered`).
        early = job.status in (ServiceJob.Status.RUNNING, ServiceJob.Status.PENDING)
        if not early and job.status != ServiceJob.Status.WAITING:
            raise Conflict(f"The job is {job.status}; it no longer waits for a callback.")
        job.callback_received_at = timezone.now()
        record_event(
            instance,
            "job_callback_received",
            element_id=job.element_id,
            payload={"job": str(job.id), "attempt": job.attempt, "outcome": kind},
        )
        accepted = job.result.get(ACCEPTED) if isinstance(job.result, dict) and not early else None
        if kind == "result":
            outcome = Outcome(result={"body": body, "accepted": accepted})
        if early:
            # The API answered before the worker recorded its 202: the worker applies this
            # (and adds the 202 answer as `accepted`).
            job.result = {EARLY_CALLBACK: outcome.stored()}
            if job.status == ServiceJob.Status.PENDING:
                job.next_attempt_at = timezone.now()  # applied now, not after the backoff
                hand_over_job_on_commit(str(job.id))
            job.save()
            return CallbackReceipt(str(job.id), job.status, duplicate=False)
        if instance.status == ProcessInstance.Status.SUSPENDED:
            # Kept on the job (as a worker's result would be), applied when it is resumed.
            job.status = ServiceJob.Status.RUNNING
            job.result = {DEFERRED: outcome.stored()}
            job.save()
            return CallbackReceipt(str(job.id), job.status, duplicate=False)
        job.result = None
        apply_locked_outcome(instance, job, outcome)
        return CallbackReceipt(str(job.id), job.status, duplicate=False)


def expire_callback_waits() -> int:
    """Throw `CALLBACK_TIMEOUT` from the tasks whose callback did not come in time (instances
    that are suspended wait: their deadline is looked at again once they are resumed)."""
    now = timezone.now()
    due = list(
        ServiceJob.objects.filter(
            status=ServiceJob.Status.WAITING,
            callback_until__lte=now,
            instance__status__in=JOB_RUNNABLE_INSTANCE_STATUSES,
        )
        .order_by("callback_until")
        .values_list("pk", flat=True)[:EXPIRE_BATCH]
    )
    expired = 0
    for job_id in due:
        with transaction.atomic():
            instance, job = lock_instance_and_job(job_id, missing=f"There is no job {job_id}.")
            if job.status != ServiceJob.Status.WAITING or instance.status not in (
                JOB_RUNNABLE_INSTANCE_STATUSES
            ):
                continue  # a callback or an operator came first
            message = f"No callback came by {job.callback_until:%Y-%m-%d %H:%M:%S} UTC"
            record_event(
                instance,
                "job_callback_timed_out",
                element_id=job.element_id,
                payload={"job": str(job.id), "attempt": job.attempt},
            )
            throw_job_error(instance, job, Outcome(error_code=TIMEOUT_CODE, error_message=message))
            expired += 1
    return expired
