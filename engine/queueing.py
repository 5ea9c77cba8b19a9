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
