"""Reading service jobs for operators: the filtered list, and how much work waits in each
Celery queue."""

import datetime
import uuid
from typing import Any

from django.conf import settings
from django.db.models import Min, Q, QuerySet
from django.utils import timezone

from engine.models import EventDelivery, ServiceJob
from engine.queueing import DELIVER_EVENTS, RUN_SERVICE_JOB, queue_message_counts
from processes.models import ProcessDefinition


def job_list(
    *,
    status: list[str] | None = None,
    connector: str = "",
    connection: str = "",
    instance: uuid.UUID | None = None,
    kind: str = "",
    element_id: str = "",
    error: str = "",
) -> QuerySet[ServiceJob]:
    """Jobs matching every filter given; the caller orders and paginates."""
    jobs = ServiceJob.objects.select_related("instance__definition").defer(
        "instance__state",
        "instance__variables",
        *ProcessDefinition.bulk_fields("instance__definition__"),
        "result",
        "history",
    )
    if status:
        jobs = jobs.filter(status__in=status)
    if connector:
        jobs = jobs.filter(connector=connector)
    if connection:
        jobs = jobs.filter(Q(parameters__connection=connection) | Q(waiting_on=connection))
    if instance is not None:
        jobs = jobs.filter(instance_id=instance)
    if kind:
        jobs = jobs.filter(kind=kind)
    if element_id:
        jobs = jobs.filter(element_id=element_id)
    if error:
        jobs = jobs.filter(last_error__icontains=error)
    return jobs


def _age(since: datetime.datetime | None, now: datetime.datetime) -> float | None:
    return None if since is None else round(max((now - since).total_seconds(), 0.0), 3)


def _oldest_pending_job(now: datetime.datetime) -> datetime.datetime | None:
    """When the oldest connector job that should be in the queue now became due."""
    oldest: datetime.datetime | None = ServiceJob.objects.filter(
        status=ServiceJob.Status.PENDING,
        kind=ServiceJob.Kind.CONNECTOR,
        next_attempt_at__lte=now,
    ).aggregate(oldest=Min("next_attempt_at"))["oldest"]
    return oldest


def _oldest_pending_delivery() -> datetime.datetime | None:
    oldest: datetime.datetime | None = EventDelivery.objects.filter(
        status=EventDelivery.Status.PENDING
    ).aggregate(oldest=Min("created_at"))["oldest"]
    return oldest


def _peeked_since(peeked: dict[str, Any] | None) -> datetime.datetime | None:
    """When the work of a message peeked at in the broker became due (from its job or
    delivery row), None when that cannot be told."""
    if not peeked or not isinstance(peeked.get("args"), list) or not peeked["args"]:
        return None
    try:
        if peeked.get("task") == RUN_SERVICE_JOB:
            row = ServiceJob.objects.filter(pk=uuid.UUID(str(peeked["args"][0])))
            due = row.values_list("next_attempt_at", "created_at").first()
            return (due[0] or due[1]) if due else None
        if peeked.get("task") == DELIVER_EVENTS and isinstance(peeked["args"][0], list):
            ids = [uuid.UUID(str(i)) for i in peeked["args"][0]][:50]
            result: datetime.datetime | None = EventDelivery.objects.filter(pk__in=ids).aggregate(
                oldest=Min("created_at")
            )["oldest"]
            return result
    except (ValueError, TypeError):
        return None
    return None


def queue_depths() -> list[dict[str, Any]]:
    """Per Celery queue: messages waiting in the broker, the oldest one's age in seconds and
    where that age comes from ("broker": the oldest message peeked at; "database": the
    oldest pending row that should be in the queue), and `broker_error` when the broker
    cannot be asked (the database's view is still given)."""
    now = timezone.now()
    queues = [
        (settings.CELERY_TASK_DEFAULT_QUEUE, "jobs", _oldest_pending_job),
        (settings.BATON_EVENTS_QUEUE, "events", lambda _now: _oldest_pending_delivery()),
    ]
    try:
        counts: dict[str, tuple[int, dict[str, Any] | None]] = queue_message_counts(
            [name for name, _, _ in queues]
        )
        broker_error = ""
    except Exception as exc:  # noqa: BLE001 -- the broker is down: say so, show the rest
        counts, broker_error = {}, f"The broker cannot be asked ({type(exc).__name__})."
    rows = []
    for name, role, oldest_row in queues:
        messages, peeked = counts.get(name, (None, None))
        since = _peeked_since(peeked) if messages else None
        source = "broker" if since is not None else "database"
        if since is None:
            since = oldest_row(now)
        row: dict[str, Any] = {
            "name": name,
            "role": role,
            "messages": messages,
            "oldest_age_seconds": _age(since, now),
            "age_source": source,
        }
        if role == "jobs":
            row["pending_jobs"] = ServiceJob.objects.filter(
                status=ServiceJob.Status.PENDING, kind=ServiceJob.Kind.CONNECTOR
            ).count()
            row["running_jobs"] = ServiceJob.objects.filter(
                status=ServiceJob.Status.RUNNING, kind=ServiceJob.Kind.CONNECTOR
            ).count()
        if broker_error:
            row["broker_error"] = broker_error
        rows.append(row)
    return rows
