"""Handing work to Celery. Called from `transaction.on_commit`, never inside a transaction."""
from functools import partial

from celery import current_app
from django.db import transaction

RUN_SERVICE_JOB = "baton.run_service_job"


def enqueue_service_job(job_id: str, delay_seconds: float = 0) -> None:
    current_app.send_task(
        RUN_SERVICE_JOB, args=[job_id], countdown=delay_seconds if delay_seconds > 0 else None
    )


def enqueue_service_job_on_commit(job_id: str, delay_seconds: float = 0) -> None:
    """Enqueue the job once the current transaction commits (and never if it rolls back)."""
    transaction.on_commit(partial(enqueue_service_job, job_id, delay_seconds))


DELIVER_EVENTS = "baton.deliver_events"
# Deliveries per Celery message (a broadcast to many instances is split into chunks).
DELIVERY_CHUNK = 50


def enqueue_event_deliveries(delivery_ids: list[str]) -> None:
    for start in range(0, len(delivery_ids), DELIVERY_CHUNK):
        current_app.send_task(DELIVER_EVENTS, args=[delivery_ids[start:start + DELIVERY_CHUNK]])


def enqueue_event_deliveries_on_commit(delivery_ids: list[str]) -> None:
    """Hand message and signal deliveries to a worker once the transaction commits."""
    if delivery_ids:
        transaction.on_commit(partial(enqueue_event_deliveries, list(delivery_ids)))
