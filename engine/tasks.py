"""Celery tasks: thin wrappers that call one engine service each."""
from celery import shared_task

from engine.queueing import RUN_SERVICE_JOB
from engine.services.service_jobs import execute_service_job, sweep_service_jobs


@shared_task(name=RUN_SERVICE_JOB, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_service_job(job_id: str) -> None:
    execute_service_job(job_id)


@shared_task(name="baton.sweep_service_jobs", ignore_result=True)
def sweep_service_jobs_task() -> int:
    return sweep_service_jobs()
