"""Running service jobs on workers, applying their outcome, retrying incidents, and sweeping
up jobs whose message was lost.

A job runs in three steps, and only the first and last touch the database:
claim (short transaction, plus a session advisory lock held for the whole run so that a
duplicate message cannot run the job twice at once), call (no lock, no transaction), apply
(a new transaction under the instance row lock).
"""
import json
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from SpiffWorkflow.util.task import TaskState

from engine.actors import Person
from engine.bpmn.connector_tasks import apply_connector_result
from engine.bpmn.errors import throw_bpmn_error
from engine.connectors import BusinessError, ConnectorCall, TransientError, get_connector
from engine.connectors.outbound import OutboundRefused
from engine.connectors.secrets import MissingSecret, redact, resolve_parameters
from engine.exceptions import Conflict, ScriptFailed
from engine.jsonable import json_safe
from engine.models import ProcessInstance, ServiceJob
from engine.queueing import jobs_waiting_in_queue

from .audit import record_event
from .execution import (
    attempt,
    failed_tasks,
    load_workflow,
    lock_instance,
    persist_workflow,
    retry_failed_tasks,
    run_engine_steps,
    running_as,
)
from .handover import hand_over_job, hand_over_job_on_commit
from .repair import require_operator
from .variables import change_workflow_variables, check_variables

logger = logging.getLogger(__name__)
# A pending job this late, with no message waiting in the job queue, lost its message.
LOST_MESSAGE_SECONDS = 2
# An incident on one branch does not stop the jobs of the others.
JOB_RUNNABLE_INSTANCE_STATUSES = (
    ProcessInstance.Status.RUNNING, ProcessInstance.Status.WAITING, ProcessInstance.Status.INCIDENT,
)


# -- running a job on a worker ----------------------------------------------------------------

@dataclass
class ClaimedJob:
    id: str
    instance_id: str
    element_id: str
    connector: str
    parameters: dict[str, Any]
    attempt: int
    idempotency_key: str


@dataclass
class Outcome:
    result: Any = None
    transient: str = ""  # a retryable failure
    retry_after: float | None = None
    error_code: str = ""  # a BPMN error to throw
    error_message: str = ""
    error_details: Any = None
    incident: str = ""  # a failure no diagram can handle
    secrets: list[str] = field(default_factory=list)


def _lock_key(job_id: str) -> str:
    return f"baton.job:{job_id}"


def _try_run_lock(job_id: str) -> bool:
    # A session-level advisory lock, held across the call: if this worker dies, Postgres
    # drops its connection and the lock with it, which tells the next delivery to take over.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [_lock_key(job_id)])
        return bool(cursor.fetchone()[0])


def _release_run_lock(job_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [_lock_key(job_id)])


# One statement: mark the job running if it may run now. A pending job runs from its
# next_attempt_at on (an early duplicate message waits for the scheduled one); a running job
# is only seen here when its previous worker died, since this worker holds the run lock.
_CLAIM_SQL = """
    UPDATE engine_servicejob AS job
       SET status = 'running', attempt = job.attempt + 1, started_at = now(),
           unqueued_since = NULL, updated_at = now()
      FROM engine_processinstance AS instance
     WHERE job.id = %s
       AND instance.id = job.instance_id
       AND instance.status = ANY(%s)
       AND (job.status = 'running'
            OR (job.status = 'pending'
                AND (job.next_attempt_at IS NULL
                     OR job.next_attempt_at <= now() + interval '1 second')))
 RETURNING job.instance_id, job.element_id, job.connector, job.parameters, job.attempt,
           job.idempotency_key
"""


def _claim(job_id: str) -> ClaimedJob | None:
    """Mark the job running, or return None when it is finished, early, or its instance is
    suspended or ended (a duplicate message changes nothing; resume enqueues again)."""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [job_id, list(JOB_RUNNABLE_INSTANCE_STATUSES)])
        row = cursor.fetchone()
    if row is None:
        return None
    instance_id, element_id, connector, parameters, attempt, idempotency_key = row
    if isinstance(parameters, str):
        parameters = json.loads(parameters)
    return ClaimedJob(
        id=str(job_id), instance_id=str(instance_id), element_id=element_id,
        connector=connector, parameters=parameters, attempt=attempt,
        idempotency_key=idempotency_key,
    )


def _call(claim: ClaimedJob) -> Outcome:
    """Call the connector. Every text and value that leaves here, and every log line of this
    process, has the resolved secrets masked."""
    function = get_connector(claim.connector)
    if function is None:
        return Outcome(incident=f"No connector named {claim.connector!r} is registered.")
    secrets: list[str] = []
    try:
        params = resolve_parameters(claim.parameters, secrets)
        call = ConnectorCall(
            job_id=claim.id, idempotency_key=claim.idempotency_key, attempt=claim.attempt,
            element_id=claim.element_id, instance_id=claim.instance_id,
        )
        result = function(params, call)
        return Outcome(result=redact(json_safe(result), secrets), secrets=secrets)
    except MissingSecret as exc:
        return Outcome(incident=str(exc))
    except OutboundRefused as exc:  # a policy matter, not the diagram's: no boundary event
        return Outcome(incident=redact(str(exc), secrets), error_code=exc.code, secrets=secrets)
    except TransientError as exc:
        return Outcome(transient=redact(str(exc), secrets), retry_after=exc.retry_after,
                       secrets=secrets)
    except BusinessError as exc:
        return Outcome(
            error_code=exc.code, error_message=redact(str(exc), secrets),
            error_details=redact(json_safe(exc.details), secrets), secrets=secrets,
        )
    except Exception as exc:  # a connector's own bug is retried, then becomes an incident
        # The log record's text and traceback are masked by the secrets module.
        logger.exception("Connector %s failed", claim.connector)
        return Outcome(transient=redact(f"{type(exc).__name__}: {exc}", secrets), secrets=secrets)


def execute_service_job(job_id: str) -> None:
    """Run one job: claim it, call its connector with no lock held, apply the outcome."""
    if not _try_run_lock(job_id):
        return  # another worker is running this job right now
    try:
        claim = _claim(job_id)
        if claim is None:
            return
        outcome = _call(claim)
        apply_outcome(claim, outcome)
    finally:
        _release_run_lock(job_id)


# -- applying an outcome (a new transaction, under the instance row lock) -----------------------

def _backoff_seconds(job: ServiceJob, retry_after: float | None) -> float:
    ceiling = settings.BATON_RETRY_MAX_SECONDS
    if retry_after is not None:
        return float(min(retry_after, ceiling))
    interval = job.retry_policy.get("interval_seconds")
    if interval is not None:
        return float(interval)
    base = float(job.retry_policy.get("backoff_base_seconds") or settings.BATON_RETRY_BASE_SECONDS)
    delay = min(base * 2 ** max(job.attempt - 1, 0), ceiling)
    return float(delay * random.uniform(0.8, 1.2))  # jitter spreads retries of many jobs


def _mark_incident(instance: ProcessInstance, job: ServiceJob) -> None:
    job.status = ServiceJob.Status.DEAD
    job.save()
    instance.refresh_from_db()  # a rolled-back savepoint may have left changes in memory
    if instance.status != ProcessInstance.Status.SUSPENDED:
        instance.status = ProcessInstance.Status.INCIDENT
    instance.incident = {
        "kind": "job", "job": str(job.id), "element_id": job.element_id,
        "error_code": job.error_code, "error": job.last_error, "attempts": job.attempt,
        "since": timezone.now().isoformat(),
    }
    instance.save(update_fields=["status", "incident", "updated_at"])
    record_event(instance, "incident", element_id=job.element_id, payload={
        "kind": "job", "job": str(job.id), "error_code": job.error_code,
        "error": job.last_error, "attempts": job.attempt,
    })


def _complete(instance: ProcessInstance, job: ServiceJob, result: Any) -> None:
    job.status = ServiceJob.Status.SUCCEEDED
    job.result = result
    job.save()
    record_event(instance, "job_succeeded", element_id=job.element_id,
                 payload={"job": str(job.id), "attempt": job.attempt})
    try:
        with transaction.atomic():  # a savepoint: a failing mapping keeps the stored result
            workflow = load_workflow(instance)
            task = workflow.get_task_from_id(job.spiff_task_id)
            if task is None or task.state != TaskState.STARTED:
                return
            with running_as(None, instance):
                # A failing result mapping is the job's incident (retrying calls again)...
                apply_connector_result(task, result)
                # ...a failing post-script or later script is the incident of that task.
                attempt(task.complete)
                run_engine_steps(workflow)
            persist_workflow(instance, workflow, actor=None)
    except ScriptFailed as exc:
        job.last_error = f"Applying the result failed: {exc.detail}"
        _mark_incident(instance, job)


def _retry_or_give_up(instance: ProcessInstance, job: ServiceJob, outcome: Outcome) -> None:
    job.last_error = outcome.transient
    if job.attempt >= job.max_attempts:
        job.last_error = f"{outcome.transient} (gave up after {job.attempt} attempts)"
        _mark_incident(instance, job)
        return
    delay = _backoff_seconds(job, outcome.retry_after)
    job.status = ServiceJob.Status.PENDING
    job.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    job.save()
    record_event(instance, "job_failed", element_id=job.element_id, payload={
        "job": str(job.id), "attempt": job.attempt, "error": job.last_error,
        "retry_in_seconds": round(delay, 3),
    })
    hand_over_job_on_commit(str(job.id), delay)


def _throw_error(instance: ProcessInstance, job: ServiceJob, outcome: Outcome) -> None:
    job.error_code = outcome.error_code
    job.last_error = f"{outcome.error_code}: {outcome.error_message}"
    try:
        with transaction.atomic():
            workflow = load_workflow(instance)
            task = workflow.get_task_from_id(job.spiff_task_id)
            if task is None or task.state != TaskState.STARTED:
                return
            with running_as(None, instance):
                throw_bpmn_error(task, instance.definition.dialect, outcome.error_code,
                                 outcome.error_message, outcome.error_details)
                run_engine_steps(workflow)
            if task.state == TaskState.STARTED:
                raise _Uncaught
            job.status = ServiceJob.Status.FAILED
            job.save()
            record_event(instance, "job_failed", element_id=job.element_id, payload={
                "job": str(job.id), "attempt": job.attempt, "error_code": job.error_code,
                "error": job.last_error, "caught": True,
            })
            persist_workflow(instance, workflow, actor=None)
    except _Uncaught:
        _mark_incident(instance, job)
    except ScriptFailed as exc:
        job.last_error += f"; then the error path failed: {exc.detail}"
        _mark_incident(instance, job)


class _Uncaught(Exception):
    """No boundary event caught the error: roll its effects back and open an incident."""


def _apply_locked(instance: ProcessInstance, job: ServiceJob, outcome: Outcome) -> None:
    if outcome.incident:
        job.error_code = outcome.error_code
        job.last_error = (
            f"{outcome.error_code}: {outcome.incident}" if outcome.error_code else outcome.incident
        )
        _mark_incident(instance, job)
    elif outcome.transient:
        _retry_or_give_up(instance, job, outcome)
    elif outcome.error_code:
        _throw_error(instance, job, outcome)
    else:
        _complete(instance, job, outcome.result)


DEFERRED = "deferred_outcome"


def apply_outcome(claim: ClaimedJob, outcome: Outcome) -> None:
    with transaction.atomic():
        instance = lock_instance(claim.instance_id)
        job = ServiceJob.objects.select_for_update(no_key=True).get(pk=claim.id)
        if job.status != ServiceJob.Status.RUNNING or job.attempt != claim.attempt:
            return  # the sweep handed the job to a newer run; this result is stale
        if instance.status == ProcessInstance.Status.SUSPENDED:
            # Kept on the job, applied by resume_instance: nothing that arrives is lost.
            job.result = {DEFERRED: {
                "result": outcome.result, "transient": outcome.transient,
                "retry_after": outcome.retry_after, "error_code": outcome.error_code,
                "error_message": outcome.error_message, "error_details": outcome.error_details,
                "incident": outcome.incident,
            }}
            job.save(update_fields=["result", "updated_at"])
            return
        _apply_locked(instance, job, outcome)


def apply_deferred_outcomes(instance: ProcessInstance) -> None:
    """Apply the job results that arrived while the (locked) instance was suspended."""
    for job in (instance.jobs.select_for_update(no_key=True)
                .filter(status=ServiceJob.Status.RUNNING).order_by("pk")):
        if isinstance(job.result, dict) and DEFERRED in job.result:
            outcome = Outcome(**job.result[DEFERRED])
            job.result = None
            _apply_locked(instance, job, outcome)


# -- repair and sweep -------------------------------------------------------------------------

def retry_instance(
    *, instance_id: str, actor: Person, variables: dict[str, Any] | None = None,
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
        if instance.status != ProcessInstance.Status.INCIDENT:
            raise Conflict(f"The instance is {instance.status}, not in incident.")
        workflow = load_workflow(instance)
        changed = change_workflow_variables(instance, workflow, actor=actor,
                                            variables=variables, remove=names)
        _retry_dead_jobs(instance, actor)
        instance.status = ProcessInstance.Status.RUNNING
        instance.incident = None
        if not failed_tasks(workflow) and not changed:
            instance.save(update_fields=["status", "incident", "updated_at"])
            return instance
        with running_as(actor, instance):
            for task in retry_failed_tasks(workflow):
                record_event(instance, "task_retried", actor=actor,
                             element_id=task.task_spec.bpmn_id or "",
                             payload={"task": str(task.id)})
        persist_workflow(instance, workflow, actor=actor)
    return instance


def _retry_dead_jobs(instance: ProcessInstance, actor: Person) -> None:
    for job in (instance.jobs.select_for_update(no_key=True)
                .filter(status=ServiceJob.Status.DEAD).order_by("pk")):
        previous_attempts = job.attempt
        job.status = ServiceJob.Status.PENDING
        job.attempt = 0
        job.next_attempt_at = timezone.now()
        job.save()
        record_event(instance, "job_retried", actor=actor, element_id=job.element_id,
                     payload={"job": str(job.id), "previous_attempts": previous_attempts,
                              "last_error": job.last_error})
        hand_over_job_on_commit(str(job.id))


def _hand_over_unqueued() -> int:
    """Jobs whose hand-over failed (the broker was down): hand them over now. Stops at the
    first failure (the broker is still down; hand_over_job marks that job again)."""
    handed = 0
    for job_id in ServiceJob.objects.filter(
        status=ServiceJob.Status.PENDING, unqueued_since__isnull=False,
        instance__status__in=JOB_RUNNABLE_INSTANCE_STATUSES,
    ).order_by("unqueued_since").values_list("id", flat=True)[:500]:
        if not hand_over_job(str(job_id)):
            break
        ServiceJob.objects.filter(pk=job_id).update(unqueued_since=None)
        handed += 1
    return handed


def _requeue_late_pending(now: Any, grace: timedelta) -> int:
    with transaction.atomic():
        late = list(
            ServiceJob.objects.select_for_update(no_key=True, skip_locked=True, of=("self",))
            .filter(status=ServiceJob.Status.PENDING, next_attempt_at__lte=now - grace,
                    unqueued_since__isnull=True,
                    instance__status__in=JOB_RUNNABLE_INSTANCE_STATUSES)
            .order_by("next_attempt_at", "pk")[:500]
        )
        for job in late:
            job.next_attempt_at = now
            job.save(update_fields=["next_attempt_at", "updated_at"])
            hand_over_job_on_commit(str(job.id))
    return len(late)


def _lost_message_grace() -> timedelta | None:
    """How late a pending job must be before its message counts as lost: a moment when the
    job queue is empty (the broker lost it, e.g. Redis restarted), the full sweep grace when
    messages wait there (it may be among them); None when the broker cannot be asked."""
    try:
        waiting = jobs_waiting_in_queue()
    except Exception:  # the broker is down: nothing can be handed over now anyway
        return None
    seconds = LOST_MESSAGE_SECONDS if waiting == 0 else settings.BATON_SWEEP_GRACE_SECONDS
    return timedelta(seconds=seconds)


def _requeue_abandoned_running(now: Any) -> int:
    """Running jobs whose run lock is free: their worker is gone (the lock is held for the
    whole run and dies with the worker's connection), so they are taken over at once."""
    requeued = 0
    for job_id in ServiceJob.objects.filter(
        status=ServiceJob.Status.RUNNING,
        instance__status__in=JOB_RUNNABLE_INSTANCE_STATUSES,  # not results kept while suspended
    ).values_list("id", flat=True)[:500]:
        if not _try_run_lock(str(job_id)):
            continue  # its worker is alive and still calling
        try:
            with transaction.atomic():
                job = ServiceJob.objects.select_for_update(no_key=True).get(pk=job_id)
                if job.status == ServiceJob.Status.RUNNING:
                    job.status = ServiceJob.Status.PENDING
                    job.next_attempt_at = now
                    job.save(update_fields=["status", "next_attempt_at", "updated_at"])
                    hand_over_job_on_commit(str(job_id))
                    requeued += 1
        finally:
            _release_run_lock(str(job_id))
    return requeued


def sweep_service_jobs() -> int:
    """Hand over again the jobs whose message was never sent, was lost, or whose worker died;
    return how many. Run by the beat every BATON_SWEEP_INTERVAL_SECONDS and by every worker
    when it starts."""
    now = timezone.now()
    requeued = _hand_over_unqueued() + _requeue_abandoned_running(now)
    grace = _lost_message_grace()
    if grace is not None:
        requeued += _requeue_late_pending(now, grace)
    return requeued
