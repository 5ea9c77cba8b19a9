"""Celery tasks: thin wrappers that call one engine service each."""

from dataclasses import asdict

from celery import shared_task

from engine.queueing import DELIVER_EVENTS, DELIVER_WEBHOOKS, RUN_BATCH_CHUNK, RUN_SERVICE_JOB
from engine.services.batches import run_batch_chunk, sweep_batches
from engine.services.event_outbox import deliver_due_events, deliver_events
from engine.services.job_callbacks import expire_callback_waits
from engine.services.job_runs import run_service_jobs
from engine.services.job_sweep import sweep_service_jobs
from engine.services.retention import delete_expired_records
from engine.services.timers import fire_due_timers
from engine.services.webhooks_out import deliver_due_webhooks, deliver_webhooks


@shared_task(name=RUN_SERVICE_JOB, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_service_job(job_id: str) -> None:
    run_service_jobs(job_id)


@shared_task(name="baton.sweep_service_jobs", ignore_result=True)
def sweep_service_jobs_task() -> int:
    return sweep_service_jobs()


@shared_task(name="baton.fire_due_timers", ignore_result=True)
def fire_due_timers_task() -> int:
    """The beat's tick: due timers, due timer start events, deliveries due again, callbacks of
    long-running calls that did not come in time, webhook deliveries whose message was lost."""
    fired = fire_due_timers()
    deliver_due_events()
    expire_callback_waits()
    deliver_due_webhooks()
    return fired


@shared_task(name=DELIVER_EVENTS, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_events_task(delivery_ids: list[str]) -> None:
    deliver_events(delivery_ids)


@shared_task(name=RUN_BATCH_CHUNK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_batch_chunk_task(batch_id: str) -> None:
    """One chunk of a batch operation; it queues the next one itself."""
    run_batch_chunk(batch_id)


@shared_task(name="baton.sweep_batches", ignore_result=True)
def sweep_batches_task() -> int:
    return sweep_batches()


@shared_task(name=DELIVER_WEBHOOKS, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_webhooks_task(delivery_ids: list[str]) -> None:
    deliver_webhooks(delivery_ids)


@shared_task(name="baton.delete_expired_records", ignore_result=True)
def delete_expired_records_task() -> dict[str, int]:
    """The beat's hourly housekeeping: old finished batches and sent webhook deliveries."""
    return asdict(delete_expired_records())
