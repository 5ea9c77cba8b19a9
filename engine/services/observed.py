"""What the services tell the metrics (engine/observability), counted once the operation's
transaction has committed: a rolled-back operation counts nothing."""

from datetime import datetime
from functools import partial

from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from engine.models import ProcessInstance
from engine.observability import metrics

Status = ProcessInstance.Status


def _process_key(instance: ProcessInstance) -> str:
    return str(instance.definition.key)


def _count(counter: Counter, process: str) -> None:
    counter.labels(process=process).inc()


def instance_moved(
    instance: ProcessInstance, *, before: str, before_incident: object, fresh: bool
) -> None:
    """After a write of the instance: started, completed, or into incident."""
    process = None
    if fresh:
        process = _process_key(instance)
        transaction.on_commit(partial(_count, metrics.INSTANCES_STARTED, process))
    if instance.status == Status.COMPLETED and before != Status.COMPLETED:
        process = process or _process_key(instance)
        transaction.on_commit(partial(_count, metrics.INSTANCES_COMPLETED, process))
    if instance.incident is not None and (before_incident is None or fresh):
        process = process or _process_key(instance)
        transaction.on_commit(partial(_count, metrics.INSTANCES_INCIDENT, process))


def job_incident(instance: ProcessInstance, had_incident: bool) -> None:
    if not had_incident:
        transaction.on_commit(partial(_count, metrics.INSTANCES_INCIDENT, _process_key(instance)))


def _observe_element(process: str, element: str, kind: str, seconds: float) -> None:
    metrics.ELEMENT_DURATION.labels(process=process, element=element, type=kind).observe(seconds)


def element_done(instance: ProcessInstance, element_id: str, kind: str, since: datetime) -> None:
    """A waiting element (human task, service task) that began at `since` is done."""
    seconds = max(0.0, (timezone.now() - since).total_seconds())
    transaction.on_commit(
        partial(_observe_element, _process_key(instance), element_id, kind, seconds)
    )


def timer_fired(instance: ProcessInstance, due_at: datetime) -> None:
    lateness = max(0.0, (timezone.now() - due_at).total_seconds())
    process = _process_key(instance)
    transaction.on_commit(partial(_observe_lateness, process, lateness))


def _observe_lateness(process: str, seconds: float) -> None:
    metrics.TIMER_LATENESS.labels(process=process).observe(seconds)
