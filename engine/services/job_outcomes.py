"""Applying a service job's outcome to its instance: a new transaction under the instance row
lock. A result completes the parked task, a transient failure is retried with backoff, a
business error is thrown as a BPMN error, anything else opens an incident. A call the API
accepted for later (202 with `async_callback`) parks the job until its callback
(services.job_callbacks).

A result that arrives while the instance is suspended is kept on the job and applied by
`apply_deferred_outcomes` when it is resumed."""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from engine.actors import Actor
from engine.bpmn.connector_tasks import (
    apply_connector_result,
    apply_external_variables,
)
from engine.bpmn.errors import throw_bpmn_error
from engine.bpmn.failures import attempt, run_engine_steps
from engine.bpmn.walks import is_parked, parked_task
from engine.exceptions import InvalidInput, ScriptFailed
from engine.models import ProcessInstance, ServiceJob
from engine.rows import save_row

from . import observed
from .audit import (
    events_in_one_insert,
    forget_pending_events,
    pending_events_mark,
    record_event,
)
from .delivery_outbox import exponential_backoff
from .handover import hand_over_job_on_commit
from .incidents import open_job_incident
from .instance_status import decide_status, has_active_jobs, has_dead_jobs
from .instance_store import lock_instance_and_job, open_run, persist_workflow
from .running import running_as


@dataclass
class ClaimedJob:
    id: str
    instance_id: str
    element_id: str
    connector: str
    parameters: dict[str, Any]
    attempt: int
    idempotency_key: str
    retries: int = 0  # the operator's retries before this call
    answered: bool = False  # a callback came for an earlier run of this call (EARLY_CALLBACK)


@dataclass
class Outcome:
    result: Any = None
    transient: str = ""  # a retryable failure
    retry_after: float | None = None
    rate_limited: bool = False  # the API answered 429
    error_code: str = ""  # a BPMN error to throw
    error_message: str = ""
    error_details: Any = None
    incident: str = ""  # a failure no diagram can handle
    # The call was accepted (202): wait this long for the callback; `result` is the answer.
    await_callback_seconds: float | None = None
    secrets: list[str] = field(default_factory=list)

    def stored(self) -> dict[str, Any]:
        """The outcome as a job keeps it until it can be applied (`Outcome(**stored)`)."""
        return {
            "result": self.result,
            "transient": self.transient,
            "retry_after": self.retry_after,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "error_details": self.error_details,
            "incident": self.incident,
            "await_callback_seconds": self.await_callback_seconds,
        }


MAX_ERROR_CODE_CHARS = 100


def checked_error_code(code: object) -> str:
    """A BPMN error code a worker or a callback reports: text of 1 to MAX_ERROR_CODE_CHARS
    characters, taken as given (a diagram's errorCode is matched exactly)."""
    if not isinstance(code, str) or not code or len(code) > MAX_ERROR_CODE_CHARS:
        raise InvalidInput(f"error_code must be a text of 1 to {MAX_ERROR_CODE_CHARS} characters.")
    return code


def backoff_seconds(job: ServiceJob, retry_after: float | None) -> float:
    ceiling = settings.BATON_RETRY_MAX_SECONDS
    if retry_after is not None:
        return float(min(retry_after, ceiling))
    interval = job.retry_policy.get("interval_seconds")
    if interval is not None:
        return float(interval)
    base = float(job.retry_policy.get("backoff_base_seconds") or settings.BATON_RETRY_BASE_SECONDS)
    return exponential_backoff(job.attempt, base=base, ceiling=ceiling, jitter=True)


def complete_job(
    instance: ProcessInstance, job: ServiceJob, result: Any, *, actor: Actor = None
) -> None:
    """The job succeeded with `result`; `actor` is who reported it (None: Baton's own worker).
    Its audit events and those of the run it continues are written with one INSERT."""
    with events_in_one_insert():
        job.status = ServiceJob.Status.SUCCEEDED
        job.result = result
        save_row(job)
        observed.element_done(instance, job.element_id, "serviceTask", job.created_at)
        record_event(
            instance,
            "job_succeeded",
            actor=actor,
            element_id=job.element_id,
            payload={"job": str(job.id), "attempt": job.attempt},
        )
        mark = pending_events_mark()
        try:
            # A savepoint: a failing mapping keeps the stored result. Needed even when
            # persist_workflow takes its own: completing the task may write data stores before.
            with transaction.atomic():
                _continue_run(instance, job, result)
        except ScriptFailed as exc:
            forget_pending_events(mark)  # what the rolled-back run recorded
            job.last_error = f"Applying the result failed: {exc.detail}"
            open_job_incident(instance, job)


def _continue_run(instance: ProcessInstance, job: ServiceJob, result: Any) -> None:
    """Complete the job's parked task with `result` and run the instance on."""
    run = open_run(instance)
    task = parked_task(run.workflow, job.spiff_task_id)
    if task is None:
        return
    with running_as(None, instance):
        # A failing result mapping is the job's incident (retrying calls again)...
        if job.kind == ServiceJob.Kind.EXTERNAL:
            apply_external_variables(task, result or {})
        else:
            apply_connector_result(task, result)
        # ...a failing post-script or later script is the incident of that task.
        attempt(run, task.complete)
        run_engine_steps(run)
    persist_workflow(instance, run, actor=None)


def _retry_or_give_up(instance: ProcessInstance, job: ServiceJob, outcome: Outcome) -> None:
    job.last_error = outcome.transient
    if job.attempt >= job.max_attempts:
        job.last_error = f"{outcome.transient} (gave up after {job.attempt} attempts)"
        open_job_incident(instance, job)
        return
    delay = backoff_seconds(job, outcome.retry_after)
    job.status = ServiceJob.Status.PENDING
    job.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    save_row(job)
    record_event(
        instance,
        "job_failed",
        element_id=job.element_id,
        payload={
            "job": str(job.id),
            "attempt": job.attempt,
            "error": job.last_error,
            "retry_in_seconds": round(delay, 3),
        },
    )
    hand_over_job_on_commit(str(job.id), delay)


def throw_job_error(instance: ProcessInstance, job: ServiceJob, outcome: Outcome) -> None:
    job.error_code = outcome.error_code
    job.last_error = f"{outcome.error_code}: {outcome.error_message}"
    try:
        with transaction.atomic():
            run = open_run(instance)
            task = parked_task(run.workflow, job.spiff_task_id)
            if task is None:
                return
            with running_as(None, instance):
                throw_bpmn_error(
                    task,
                    instance.definition.dialect,
                    outcome.error_code,
                    outcome.error_message,
                    outcome.error_details,
                    # An external worker's variables, sent with the error.
                    outcome.result if job.kind == ServiceJob.Kind.EXTERNAL else None,
                )
                run_engine_steps(run)
            if is_parked(task):
                raise _Uncaught
            job.status = ServiceJob.Status.FAILED
            save_row(job)
            record_event(
                instance,
                "job_failed",
                element_id=job.element_id,
                payload={
                    "job": str(job.id),
                    "attempt": job.attempt,
                    "error_code": job.error_code,
                    "error": job.last_error,
                    "caught": True,
                },
            )
            persist_workflow(instance, run, actor=None)
    except _Uncaught:
        open_job_incident(instance, job)
    except ScriptFailed as exc:
        job.last_error += f"; then the error path failed: {exc.detail}"
        open_job_incident(instance, job)


def await_callback(instance: ProcessInstance, job: ServiceJob, outcome: Outcome) -> None:
    """The API accepted the call: the job waits for its callback until its deadline, and the
    instance waits for the world meanwhile."""
    seconds = float(outcome.await_callback_seconds or 0)
    job.status = ServiceJob.Status.WAITING
    job.callback_until = timezone.now() + timedelta(seconds=seconds)
    job.result = {ACCEPTED: outcome.result}
    job.last_error = ""
    save_row(job)
    record_event(
        instance,
        "job_awaiting_callback",
        element_id=job.element_id,
        payload={
            "job": str(job.id),
            "attempt": job.attempt,
            "until": job.callback_until.isoformat(),
        },
    )
    instance.status = decide_status(
        instance.status,
        incident=bool(instance.incident) or has_dead_jobs(instance),
        active_jobs=has_active_jobs(instance),
    )
    instance.save(update_fields=["status", "updated_at"])


class _Uncaught(Exception):
    """No boundary event caught the error: roll its effects back and open an incident."""


def apply_locked_outcome(instance: ProcessInstance, job: ServiceJob, outcome: Outcome) -> None:
    if outcome.incident:
        job.error_code = outcome.error_code
        job.last_error = (
            f"{outcome.error_code}: {outcome.incident}" if outcome.error_code else outcome.incident
        )
        open_job_incident(instance, job)
    elif outcome.transient:
        _retry_or_give_up(instance, job, outcome)
    elif outcome.error_code:
        throw_job_error(instance, job, outcome)
    elif outcome.await_callback_seconds is not None:
        await_callback(instance, job, outcome)
    else:
        complete_job(instance, job, outcome.result)


DEFERRED = "deferred_outcome"
# A waiting job's result: the API's first answer (the 202), until the callback replaces it.
ACCEPTED = "accepted"
# A callback that came before the worker recorded the 202 (the API was quicker than the
# worker's commit): kept on the running job, applied instead of the wait.
EARLY_CALLBACK = "early_callback"


def apply_outcome(claim: ClaimedJob, outcome: Outcome) -> None:
    with transaction.atomic():
        instance, job = lock_instance_and_job(claim.id, missing=f"There is no job {claim.id}.")
        if job.status != ServiceJob.Status.RUNNING or job.attempt != claim.attempt:
            return  # the sweep handed the job to a newer run; this result is stale
        early = job.result.get(EARLY_CALLBACK) if isinstance(job.result, dict) else None
        if early is not None:
            # The callback came before the worker recorded the call's answer: the callback
            # tells the outcome of the work, whatever the answer to the call itself was.
            job.result = None
            accepted = outcome.result if outcome.await_callback_seconds is not None else None
            outcome = Outcome(**early)
            if isinstance(outcome.result, dict) and outcome.result.get(ACCEPTED, 0) is None:
                outcome.result[ACCEPTED] = accepted
        if instance.status == ProcessInstance.Status.SUSPENDED:
            # Kept on the job, applied by resume_instance: nothing that arrives is lost.
            job.result = {DEFERRED: outcome.stored()}
            job.save(update_fields=["result", "updated_at"])
            return
        apply_locked_outcome(instance, job, outcome)


def apply_deferred_outcomes(instance: ProcessInstance) -> None:
    """Apply the job results that arrived while the (locked) instance was suspended."""
    for job in (
        instance.jobs.select_for_update(no_key=True)
        .filter(status=ServiceJob.Status.RUNNING)
        .order_by("pk")
    ):
        if isinstance(job.result, dict) and DEFERRED in job.result:
            outcome = Outcome(**job.result[DEFERRED])
            job.result = None
            apply_locked_outcome(instance, job, outcome)
