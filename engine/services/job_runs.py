"""Running a service job on a worker.

A job runs in three steps, and only the first and last touch the database:
claim (short transaction, plus a session advisory lock held for the whole run so that a
duplicate message cannot run the job twice at once), call (no lock, no transaction), apply
(a new transaction under the instance row lock: services.job_outcomes).
"""

import datetime
import json
import logging
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

from engine.connectors import (
    AwaitCallback,
    BusinessError,
    ConnectorCall,
    ConnectorFunction,
    RateLimited,
    TransientError,
    get_connector,
    limits,
    stored_task_headers,
)
from engine.connectors.connections import (
    ON_CIRCUIT_OPEN_PARAM,
    ConnectionConfig,
    UnknownConnection,
    apply_connection,
    connection_of,
)
from engine.connectors.outbound import OutboundRefused
from engine.connectors.secrets import MissingSecret, collecting, redact, resolve_parameters
from engine.jsonable import encodes_within, json_safe
from engine.models import ProcessInstance
from engine.observability import context, metrics
from engine.observability.tracing import tracer

from .connections import breaker_changed, wait_for_limit
from .handover import hand_over_job, keeping_due_jobs
from .job_outcomes import ClaimedJob, Outcome, apply_outcome

logger = logging.getLogger(__name__)
# An incident on one branch does not stop the jobs of the others.
JOB_RUNNABLE_INSTANCE_STATUSES = (
    ProcessInstance.Status.RUNNING,
    ProcessInstance.Status.WAITING,
    ProcessInstance.Status.INCIDENT,
)


def _lock_key(job_id: str) -> str:
    return f"baton.job:{job_id}"


def try_run_lock(job_id: str) -> bool:
    """Take the job's run lock alone (the sweep's test whether a running job's worker is
    gone); a worker takes it with its claim (_LOCK_AND_CLAIM_SQL)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [_lock_key(job_id)])
        return bool(cursor.fetchone()[0])


def release_run_lock(job_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [_lock_key(job_id)])


# The run lock is a session-level advisory lock, held across the call: if the worker dies,
# Postgres drops its connection and the lock with it, which tells the next delivery (or the
# sweep) to take over.
# One statement: take the job's run lock and, when it is this worker's, mark the job running if
# it may run now. A pending job runs from its next_attempt_at on (an early duplicate message
# waits for the scheduled one); a running job is only seen here when its previous worker died,
# since the run lock is this worker's.
_LOCK_AND_CLAIM_SQL = """
    WITH run_lock AS MATERIALIZED (SELECT pg_try_advisory_lock(hashtext(%s)) AS held),
    claimed AS (
    UPDATE engine_servicejob AS job
       SET status = 'running', attempt = job.attempt + 1, started_at = now(),
           unqueued_since = NULL, waiting_on = '', updated_at = now()
      FROM engine_processinstance AS instance
     WHERE (SELECT held FROM run_lock)
       AND job.id = %s
       AND job.kind = 'connector'
       AND instance.id = job.instance_id
       AND instance.status = ANY(%s)
       AND (job.status = 'running'
            OR (job.status = 'pending'
                AND (job.next_attempt_at IS NULL
                     OR job.next_attempt_at
                        <= COALESCE(%s::timestamptz, now()) + interval '1 second')))
 RETURNING job.instance_id, job.element_id, job.connector, job.parameters, job.attempt,
           job.idempotency_key, jsonb_array_length(job.history),
           EXTRACT(EPOCH FROM now() - COALESCE(job.next_attempt_at, job.created_at)),
           job.result -> 'early_callback' IS NOT NULL)
    SELECT run_lock.held, claimed.* FROM run_lock LEFT JOIN claimed ON true
"""


class _NotLocked(Exception):
    """Another worker holds the job's run lock: it is running the job right now."""


def _lock_and_claim(job_id: str, at: datetime.datetime | None) -> ClaimedJob | None:
    """Take the job's run lock (_NotLocked when another worker has it), then mark the job
    running, or return None when it is finished, early (by Postgres's time, or by `at` when
    given), or its instance is suspended or ended (a duplicate message changes nothing; resume
    enqueues again)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _LOCK_AND_CLAIM_SQL,
            [_lock_key(job_id), job_id, list(JOB_RUNNABLE_INSTANCE_STATUSES), at],
        )
        held, *row = cursor.fetchone()
    if not held:
        raise _NotLocked
    if row[0] is None:
        return None
    (
        instance_id,
        element_id,
        connector,
        parameters,
        attempt,
        idempotency_key,
        retries,
        waited,
        answered,
    ) = row
    if isinstance(parameters, str):
        parameters = json.loads(parameters)
    metrics.JOB_WAIT.labels(connector=connector).observe(max(0.0, float(waited)))
    return ClaimedJob(
        id=str(job_id),
        instance_id=str(instance_id),
        element_id=element_id,
        connector=connector,
        parameters=parameters,
        attempt=attempt,
        idempotency_key=idempotency_key,
        retries=retries,
        answered=bool(answered),
    )


class ResultTooLarge(Exception):
    """A connector returned more than BATON_MAX_CONNECTOR_RESULT_BYTES: an incident."""


def _bounded(value: Any) -> Any:
    """`value` as plain JSON, when it is no larger than BATON_MAX_CONNECTOR_RESULT_BYTES."""
    limit = settings.BATON_MAX_CONNECTOR_RESULT_BYTES
    if not encodes_within(value, limit):
        raise ResultTooLarge(
            f"The connector's answer is larger than {limit} bytes as JSON "
            "(BATON_MAX_CONNECTOR_RESULT_BYTES); it was not stored. Ask the API for less, or "
            "raise the setting."
        )
    return json_safe(value)


def _call(claim: ClaimedJob) -> Outcome:
    """Call the connector. Every text and value that leaves here, and every log line of this
    process, has the resolved secrets, and the credentials the connector obtained itself (an
    OAuth2 access token), masked."""
    function = get_connector(claim.connector)
    if function is None:
        return Outcome(incident=f"No connector named {claim.connector!r} is registered.")
    secrets: list[str] = []
    with collecting(secrets):
        return _collected_call(claim, function, secrets)


def _collected_call(claim: ClaimedJob, function: ConnectorFunction, secrets: list[str]) -> Outcome:
    try:
        params = resolve_parameters(apply_connection(claim.parameters), secrets)
        call = ConnectorCall(
            job_id=claim.id,
            idempotency_key=claim.idempotency_key,
            attempt=claim.attempt,
            element_id=claim.element_id,
            instance_id=claim.instance_id,
            headers=stored_task_headers(claim.parameters),
            retries=claim.retries,
        )
        result = function(params, call)
        return Outcome(result=redact(_bounded(result), secrets), secrets=secrets)
    except ResultTooLarge as exc:
        return Outcome(incident=str(exc), secrets=secrets)
    except AwaitCallback as exc:
        return _accepted(exc, secrets)
    except (MissingSecret, UnknownConnection) as exc:
        return Outcome(incident=str(exc))
    except OutboundRefused as exc:  # a policy matter, not the diagram's: no boundary event
        return Outcome(incident=redact(str(exc), secrets), error_code=exc.code, secrets=secrets)
    except TransientError as exc:
        return Outcome(
            transient=redact(str(exc), secrets),
            retry_after=exc.retry_after,
            rate_limited=isinstance(exc, RateLimited),
            secrets=secrets,
        )
    except BusinessError as exc:
        try:
            details = _bounded(exc.details)
        except ResultTooLarge as too_large:
            details = str(too_large)  # the error still reaches the diagram, without them
        return Outcome(
            error_code=exc.code,
            error_message=redact(str(exc), secrets),
            error_details=redact(details, secrets),
            secrets=secrets,
        )
    except Exception as exc:  # a connector's own bug is retried, then becomes an incident
        # The log record's text and traceback are masked by the secrets module.
        logger.exception("Connector %s failed", claim.connector)
        return Outcome(transient=redact(f"{type(exc).__name__}: {exc}", secrets), secrets=secrets)


def _accepted(exc: AwaitCallback, secrets: list[str]) -> Outcome:
    try:
        accepted = _bounded(exc.accepted)
    except ResultTooLarge as too_large:
        return Outcome(incident=str(too_large), secrets=secrets)
    return Outcome(
        result=redact(accepted, secrets),
        await_callback_seconds=exc.timeout_seconds,
        secrets=secrets,
    )


def _outcome_name(outcome: Outcome) -> str:
    if outcome.incident:
        return "incident"
    if outcome.transient:
        return "retry"
    if outcome.error_code:
        return "error"
    if outcome.await_callback_seconds is not None:
        return "accepted"
    return "succeeded"


def _timed_call(claim: ClaimedJob) -> Outcome:
    """The call, counted and timed by connector and host (metrics)."""
    host = metrics.host_of(claim.parameters)
    began = time.perf_counter()
    outcome = _call(claim)
    seconds = time.perf_counter() - began
    name = _outcome_name(outcome)
    metrics.JOB_DURATION.labels(connector=claim.connector, host=host).observe(seconds)
    metrics.JOB_ATTEMPTS.labels(connector=claim.connector, host=host, outcome=name).inc()
    if name not in ("succeeded", "accepted"):
        metrics.JOB_ERRORS.labels(connector=claim.connector, host=host, kind=name).inc()
    return outcome


def _limit_outcome(outcome: Outcome) -> str:
    """How a call went, for the connection's circuit breaker and rate limiter."""
    if outcome.rate_limited:
        return limits.CallOutcome.LIMITED
    if outcome.transient:
        return limits.CallOutcome.FAIL
    if outcome.incident:
        return limits.CallOutcome.NONE  # refused before any call (policy, secret)
    return limits.CallOutcome.OK  # an answer, a 4xx included: the API is up


def _wait(claim: ClaimedJob, config: ConnectionConfig, verdict: str, seconds: float) -> float:
    reason = limits.WAIT_REASONS.get(verdict, verdict)
    if wait_for_limit(claim.id, claim.attempt, config.name, reason, seconds):
        host = metrics.host_of(claim.parameters)
        metrics.JOB_ERRORS.labels(connector=claim.connector, host=host, kind="wait").inc()
        return seconds
    return -1.0


def _run_limited(claim: ClaimedJob, config: ConnectionConfig) -> float:
    """Call within the connection's limits; the seconds to wait when the job must wait (its
    attempt given back), else -1 once the outcome is applied."""
    decision = limits.acquire(config, claim.id)
    if not decision.allowed:
        wants_error = claim.parameters.get(ON_CIRCUIT_OPEN_PARAM) == "error"
        if decision.verdict == limits.Verdict.OPEN and wants_error:
            message = f"The circuit breaker of the connection {config.name!r} is open."
            apply_outcome(claim, Outcome(error_code="CIRCUIT_OPEN", error_message=message))
            return -1.0
        return _wait(claim, config, decision.verdict, decision.wait_seconds)
    began = time.perf_counter()
    outcome = Outcome(incident="The call did not end.")
    try:
        outcome = _timed_call(claim)
    finally:
        transition = limits.release(
            config,
            claim.id,
            _limit_outcome(outcome),
            held_seconds=time.perf_counter() - began,
            retry_after=outcome.retry_after,
        )
        if transition:
            breaker_changed(config.name, transition)
    if outcome.rate_limited:  # the API asked to slow down: wait, as for the rate limit
        return _wait(claim, config, limits.Verdict.PAUSED, outcome.retry_after or 1.0)
    apply_outcome(claim, outcome)
    return -1.0


def _run_claimed(claim: ClaimedJob) -> float:
    config = connection_of(claim.parameters)
    if config is None:
        apply_outcome(claim, _timed_call(claim))
        return -1.0
    return _run_limited(claim, config)


def execute_service_job(job_id: str, *, at: datetime.datetime | None = None) -> None:
    """Run one job: claim it, call its connector with no lock held, apply the outcome. A job
    that meets a limit of its connection waits: handed over again, due when it may run.

    `at`: the time the job counts as due by instead of Postgres's `now()` (a process test that
    moved the clock, baton.testing: inside its transaction, `now()` stands still)."""
    context.bind(job=job_id)
    wait, lock_owned = -1.0, True
    try:
        # Inside the try: a statement that fails may have taken the run lock all the same.
        claim = _lock_and_claim(job_id, at)
        if claim is None:
            return
        # The job's span: the outbound call's span, and a retry's message, are its children.
        with tracer().start_as_current_span(
            f"job {claim.connector}",
            attributes={"baton.connector": claim.connector, "baton.attempt": claim.attempt},
        ):
            context.bind(instance=claim.instance_id, element=claim.element_id, job=claim.id)
            if claim.answered:
                # A callback already answered the call (its worker died before recording the
                # 202): calling again would do the work twice; apply_outcome applies the answer.
                apply_outcome(claim, Outcome())
            else:
                wait = _run_claimed(claim)
    except _NotLocked:
        lock_owned = False  # another worker is running this job right now
    finally:
        if lock_owned:
            release_run_lock(job_id)
    if wait >= 0:
        # Only now, with the run lock free: an early message must find the job claimable.
        hand_over_job(job_id, wait)


def run_service_jobs(job_id: str) -> None:
    """A worker's run of a job's message: the job, then the instance's next job when its
    outcome made one due now, and so on, for up to BATON_JOB_CONTINUE_SECONDS; every other job
    made meanwhile is handed over at once, so that a fan-out runs in parallel. A sequence of
    service tasks thus skips the broker (the send, the hand-off to a pool process) between its
    steps, as a Camunda 7 job executor runs an instance's exclusive jobs one after the other."""
    if connection.in_atomic_block:
        # The jobs made would be kept only when the caller commits, after this returns.
        execute_service_job(job_id)
        return
    until = time.monotonic() + settings.BATON_JOB_CONTINUE_SECONDS
    next_job: str | None = job_id
    while next_job is not None:
        with keeping_due_jobs() as made:
            try:
                if next_job != job_id:
                    close_old_connections()  # as Celery does before each task's message
                execute_service_job(next_job)
            except BaseException:
                # A kept job has no message: hand it over. One this run claimed runs again as
                # the sweep would run it, with the same Idempotency-Key.
                _hand_over_all(made if next_job == job_id else [next_job, *made])
                raise
        next_job = made.pop(0) if made and time.monotonic() < until else None
        _hand_over_all(made)


def _hand_over_all(job_ids: list[str]) -> None:
    for job_id in job_ids:
        hand_over_job(job_id)
