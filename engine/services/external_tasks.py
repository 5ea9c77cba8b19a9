"""External tasks: service tasks whose Camunda 7 topic or Camunda 8 job type names no Baton
connector wait for workers outside Baton, which fetch and complete them through the API, as
Camunda's external tasks and job workers do.

An external task is a ServiceJob of kind `external` that the Celery workers never run:
pending while it waits for a worker, running while a worker holds its lock (`worker_id`,
`locked_until`). A lock that ran out returns it to the queue (the next fetch takes it), and
only the worker that holds a task may complete, fail or extend it (a `Conflict` otherwise).

Fetching is a batch claim (rows of one table, SKIP LOCKED, a short transaction of its own);
completing, failing and throwing a BPMN error are instance operations under the instance's
row lock, applied as a connector job's outcome is (services.job_outcomes).
"""

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from engine.actors import Person, as_user
from engine.connectors import TASK_HEADERS_KEY, stored_task_headers
from engine.connectors.secrets import LITERALS_KEY
from engine.exceptions import Conflict, InvalidInput
from engine.jsonable import check_json_depth
from engine.models import ProcessInstance, ServiceJob
from engine.permissions import can_work_external_tasks, is_operator
from processes.models import ProcessDefinition

from .audit import record_event
from .external_task_queue import (
    LOOK_AGAIN_SECONDS,
    announce_external_task,
    listening,
    wait_for_announcement,
)
from .incidents import open_job_incident
from .instance_store import lock_instance_and_job
from .job_outcomes import (
    Outcome,
    backoff_seconds,
    checked_error_code,
    complete_job,
    throw_job_error,
)
from .job_runs import JOB_RUNNABLE_INSTANCE_STATUSES

# The longest a fetch may wait for tasks (Camunda's asyncResponseTimeout), and a lock's.
MAX_WAIT_MS = 30_000
MAX_LOCK_MS = 24 * 3600 * 1000
MAX_TASKS = 100


@dataclass(frozen=True)
class TopicRequest:
    """A topic a worker fetches: how long it locks the tasks, which variables it wants
    (None: all of them)."""

    topic_name: str
    lock_duration: int  # milliseconds
    variables: list[str] | None = None


@dataclass(frozen=True)
class LockedTask:
    """A task as its worker gets it."""

    id: uuid.UUID
    topic_name: str
    worker_id: str
    lock_expiration_time: datetime
    process_instance_id: uuid.UUID
    process_definition_key: str
    activity_id: str
    business_key: str | None
    attempt: int
    retries: int
    error_message: str
    variables: dict[str, Any] = field(default_factory=dict)
    # The service task's static headers (Camunda 8 zeebe:taskHeaders).
    headers: dict[str, str] = field(default_factory=dict)


def require_worker(actor: Person) -> None:
    if not can_work_external_tasks(actor):
        raise PermissionDenied(
            "Only members of the external task worker groups may fetch and complete external tasks."
        )


def _check_worker_id(worker_id: str) -> str:
    # Taken as given, like Camunda: the id a worker sends is the id that holds the lock (no
    # trimming that would make a schema-valid id of blanks empty, or two ids the same).
    worker_id = worker_id or ""
    if not worker_id or len(worker_id) > 255:
        raise InvalidInput("worker_id must be a text of 1 to 255 characters.")
    return worker_id


def _check_topics(topics: list[TopicRequest]) -> None:
    if not topics:
        raise InvalidInput("Name at least one topic to fetch.")
    for topic in topics:
        if not 1 <= topic.lock_duration <= MAX_LOCK_MS:
            raise InvalidInput(
                f"lock_duration of {topic.topic_name!r} must be 1 to {MAX_LOCK_MS} ms."
            )


def _worker_variables(job: ServiceJob, wanted: list[str] | None) -> dict[str, Any]:
    """The instance's variables with the task's input parameters over them. Secret
    references stay references: secrets are resolved only on Baton's own workers."""
    parameters = {
        k: v for k, v in job.parameters.items() if k not in (LITERALS_KEY, TASK_HEADERS_KEY)
    }
    variables = {**(job.instance.variables or {}), **parameters}
    if wanted is None:
        return variables
    return {name: variables[name] for name in wanted if name in variables}


def _retries_left(job: ServiceJob) -> int:
    return max(job.max_attempts - job.attempt, 0)


def _locked_task(job: ServiceJob, wanted: list[str] | None) -> LockedTask:
    assert job.locked_until is not None
    return LockedTask(
        id=job.id,
        topic_name=job.connector,
        worker_id=job.worker_id,
        lock_expiration_time=job.locked_until,
        process_instance_id=job.instance_id,
        process_definition_key=job.instance.definition.key,
        activity_id=job.element_id,
        business_key=job.instance.business_key,
        attempt=job.attempt,
        retries=_retries_left(job),
        error_message=job.last_error,
        variables=_worker_variables(job, wanted),
        headers=stored_task_headers(job.parameters),
    )


def _lock_available(
    worker_id: str, topics: list[TopicRequest], max_tasks: int, actor: Person
) -> list[LockedTask]:
    """One claim: lock up to `max_tasks` fetchable tasks of the topics for the worker."""
    by_name = {topic.topic_name: topic for topic in topics}
    with transaction.atomic(durable=True):
        now = timezone.now()
        jobs = list(
            ServiceJob.objects.select_for_update(no_key=True, skip_locked=True, of=("self",))
            .select_related("instance__definition")
            .defer(
                "instance__state",
                *ProcessDefinition.bulk_fields("instance__definition__"),
            )
            .filter(
                Q(status=ServiceJob.Status.PENDING, next_attempt_at__lte=now)
                # A lock that ran out: the task is back in the queue.
                | Q(status=ServiceJob.Status.RUNNING, locked_until__lt=now),
                kind=ServiceJob.Kind.EXTERNAL,
                connector__in=sorted(by_name),
                instance__status__in=JOB_RUNNABLE_INSTANCE_STATUSES,
            )
            .order_by("next_attempt_at", "pk")[:max_tasks]
        )
        locked = []
        for job in jobs:
            topic = by_name[job.connector]
            expired_holder = job.worker_id if job.status == ServiceJob.Status.RUNNING else ""
            job.status = ServiceJob.Status.RUNNING
            job.attempt += 1
            job.worker_id = worker_id
            job.locked_by = as_user(actor)
            job.started_at = now
            job.locked_until = now + timedelta(milliseconds=topic.lock_duration)
            job.save(
                update_fields=[
                    "status",
                    "attempt",
                    "worker_id",
                    "locked_by",
                    "started_at",
                    "locked_until",
                    "updated_at",
                ]
            )
            payload: dict[str, Any] = {
                "job": str(job.id),
                "worker_id": worker_id,
                "attempt": job.attempt,
                "locked_until": job.locked_until.isoformat(),
            }
            if expired_holder:
                payload["lock_expired_of"] = expired_holder
            record_event(
                job.instance,
                "external_task_locked",
                actor=actor,
                element_id=job.element_id,
                payload=payload,
            )
            locked.append(_locked_task(job, topic.variables))
    return locked


def fetch_and_lock(
    *,
    actor: Person,
    worker_id: str,
    topics: list[TopicRequest],
    max_tasks: int = 10,
    async_response_timeout: int = 0,
) -> list[LockedTask]:
    """Lock up to `max_tasks` tasks of the topics for the worker. With an
    `async_response_timeout` (ms, at most 30 s) and none there, wait for one to come (a
    long poll): each look is a short transaction of its own, and the wait holds none."""
    require_worker(actor)
    worker_id = _check_worker_id(worker_id)
    _check_topics(topics)
    if not 1 <= max_tasks <= MAX_TASKS:
        raise InvalidInput(f"max_tasks must be 1 to {MAX_TASKS}.")
    if not 0 <= async_response_timeout <= MAX_WAIT_MS:
        raise InvalidInput(f"async_response_timeout must be 0 to {MAX_WAIT_MS} ms.")
    wait = min(async_response_timeout / 1000, settings.BATON_EXTERNAL_TASK_MAX_WAIT_SECONDS)
    deadline = time.monotonic() + wait
    with listening():
        while True:
            locked = _lock_available(worker_id, topics, max_tasks, actor)
            left = deadline - time.monotonic()
            if locked or left <= 0:
                return locked
            wait_for_announcement(min(left, LOOK_AGAIN_SECONDS))


def _lock_held(
    task_id: uuid.UUID | str, worker_id: str, actor: Person
) -> tuple[ProcessInstance, ServiceJob]:
    """Lock the task's instance, then the task, and check that `worker_id` holds it for the
    user who fetched it (an operator may act for any user, given the worker_id)."""
    instance, job = lock_instance_and_job(
        task_id, missing=f"There is no external task {task_id}.", kind=ServiceJob.Kind.EXTERNAL
    )
    if job.status != ServiceJob.Status.RUNNING:
        raise Conflict(f"The external task is {job.status}, not locked by a worker.")
    holder_ok = is_operator(actor) or (
        job.locked_by_id is not None and job.locked_by_id == actor.pk
    )
    if job.worker_id != worker_id or not holder_ok:
        # Name no holder: the worker_id of another user's worker is not the caller's to know.
        raise Conflict(
            "The external task is locked by another worker: its lock may have run out and "
            "it was fetched again."
        )
    if instance.status == ProcessInstance.Status.SUSPENDED:
        raise Conflict("The instance is suspended; try again when it has been resumed.")
    return instance, job


def _check_variables(variables: Any) -> dict[str, Any]:
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise InvalidInput("variables must be a JSON object.")
    # The API's parser checks the depth too; a service is called by other edges as well.
    check_json_depth(variables, "variables")
    return variables


def _unlocked(job: ServiceJob) -> None:
    job.worker_id = ""
    job.locked_by = None
    job.locked_until = None


def complete_external_task(
    *,
    actor: Person,
    task_id: uuid.UUID | str,
    worker_id: str,
    variables: dict[str, Any] | None = None,
) -> None:
    """The worker did the work: its variables go into the instance, which moves on."""
    require_worker(actor)
    variables = _check_variables(variables)
    with transaction.atomic(durable=True):
        instance, job = _lock_held(task_id, worker_id, actor)
        _unlocked(job)
        complete_job(instance, job, variables, actor=actor)


def _failure_delay(job: ServiceJob, retry_timeout: int | None) -> float:
    if retry_timeout is not None:
        if retry_timeout < 0:
            raise InvalidInput("retry_timeout must not be negative.")
        return retry_timeout / 1000
    return backoff_seconds(job, None)  # the diagram's retry policy


def handle_external_task_failure(
    *,
    actor: Person,
    task_id: uuid.UUID | str,
    worker_id: str,
    error_message: str,
    error_details: str = "",
    retries: int | None = None,
    retry_timeout: int | None = None,
) -> None:
    """The worker could not do the work. With `retries` left (default: what the diagram's
    retry policy leaves), the task returns to the queue after `retry_timeout` ms (default:
    the policy's backoff); with none left, the instance goes to incident."""
    require_worker(actor)
    if retries is not None and retries < 0:
        raise InvalidInput("retries must not be negative.")
    with transaction.atomic(durable=True):
        instance, job = _lock_held(task_id, worker_id, actor)
        left = _retries_left(job) if retries is None else retries
        job.max_attempts = job.attempt + left
        job.last_error = (error_message or "The external worker reported a failure.")[:2000]
        if error_details:
            job.last_error += f"\n{error_details[:8000]}"
        _unlocked(job)
        if left == 0:
            open_job_incident(instance, job)
            return
        delay = _failure_delay(job, retry_timeout)
        job.status = ServiceJob.Status.PENDING
        job.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        job.save()
        record_event(
            instance,
            "job_failed",
            actor=actor,
            element_id=job.element_id,
            payload={
                "job": str(job.id),
                "worker_id": worker_id,
                "attempt": job.attempt,
                "error": job.last_error,
                "retries": left,
                "retry_in_seconds": round(delay, 3),
            },
        )
        if delay == 0:
            announce_external_task(job.connector)


def handle_external_task_bpmn_error(
    *,
    actor: Person,
    task_id: uuid.UUID | str,
    worker_id: str,
    error_code: str,
    error_message: str = "",
    variables: dict[str, Any] | None = None,
) -> None:
    """The worker answers with a business error: thrown as a BPMN error from the task, to be
    caught by a boundary event (an incident when nothing catches it)."""
    require_worker(actor)
    variables = _check_variables(variables)
    error_code = checked_error_code(error_code)
    with transaction.atomic(durable=True):
        instance, job = _lock_held(task_id, worker_id, actor)
        _unlocked(job)
        outcome = Outcome(result=variables, error_code=error_code, error_message=error_message)
        throw_job_error(instance, job, outcome)


def extend_external_task_lock(
    *, actor: Person, task_id: uuid.UUID | str, worker_id: str, new_duration: int
) -> datetime:
    """The worker needs longer: its lock now runs `new_duration` ms from now."""
    require_worker(actor)
    if not 1 <= new_duration <= MAX_LOCK_MS:
        raise InvalidInput(f"new_duration must be 1 to {MAX_LOCK_MS} ms.")
    with transaction.atomic(durable=True):
        instance, job = _lock_held(task_id, worker_id, actor)
        job.locked_until = timezone.now() + timedelta(milliseconds=new_duration)
        job.save(update_fields=["locked_until", "updated_at"])
        record_event(
            instance,
            "external_task_locked",
            actor=actor,
            element_id=job.element_id,
            payload={
                "job": str(job.id),
                "worker_id": worker_id,
                "attempt": job.attempt,
                "locked_until": job.locked_until.isoformat(),
                "extended": True,
            },
        )
        return job.locked_until


def unlock_external_task(*, actor: Person, task_id: uuid.UUID | str, worker_id: str) -> None:
    """The worker gives the task back without doing it: any worker may fetch it now."""
    require_worker(actor)
    with transaction.atomic(durable=True):
        instance, job = _lock_held(task_id, worker_id, actor)
        _unlocked(job)
        job.status = ServiceJob.Status.PENDING
        job.next_attempt_at = timezone.now()
        job.save()
        record_event(
            instance,
            "external_task_unlocked",
            actor=actor,
            element_id=job.element_id,
            payload={"job": str(job.id), "worker_id": worker_id, "attempt": job.attempt},
        )
        announce_external_task(job.connector)


__all__ = [
    "LockedTask",
    "TopicRequest",
    "complete_external_task",
    "extend_external_task_lock",
    "fetch_and_lock",
    "handle_external_task_bpmn_error",
    "handle_external_task_failure",
    "unlock_external_task",
]
