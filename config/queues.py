"""The names of Baton's two Celery queues, from the environment (the settings, the dev
command and the tests all name them the same way).

Service jobs go to the job queue; timer ticks, the sweep and event deliveries to the events
queue, with a worker of its own, so that they never wait behind service jobs.
"""

from collections.abc import Mapping


def job_queue(environ: Mapping[str, str]) -> str:
    return environ.get("BATON_CELERY_QUEUE") or "baton"


def events_queue(environ: Mapping[str, str]) -> str:
    return environ.get("BATON_EVENTS_QUEUE") or f"{job_queue(environ)}.events"
