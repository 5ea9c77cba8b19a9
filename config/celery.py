"""The Celery application shared by the web process, the workers and the beat."""

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_prerun,
    worker_process_init,
    worker_ready,
)


def _is_celery_program() -> bool:
    """Whether this process is `celery ...` (a worker or the beat), not one that only imports
    the app (manage.py, the web server, `python -m config.devstack`, pytest)."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return program.name == "celery" or program.parent.name == "celery"


# A worker or beat started without DJANGO_SETTINGS_MODULE gets production's settings (and so
# the production outbound policy), as WSGI and ASGI do; `make run` names the dev settings.
# Programs that only import the app choose their own settings.
if _is_celery_program():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")

app = Celery("baton")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_loaded_objects(**kwargs: Any) -> None:
    # A pool process starts with the worker's modules loaded: out of the collector's way.
    from config.collector import freeze_loaded_objects

    freeze_loaded_objects()


@task_prerun.connect
def _drop_stale_database_connections(**kwargs: Any) -> None:
    # What Django does around each web request, done around each task.
    from django.db import close_old_connections

    from engine.observability import context

    close_old_connections()
    context.clear()  # the task is about no instance until the service names one


@after_setup_logger.connect
@after_setup_task_logger.connect
def _log_with_context(logger: logging.Logger, format: str, colorize: bool, **kwargs: Any) -> None:
    """Celery sets up the worker's logging itself: its lines get the instance, element, job
    and trace ids too, as JSON objects with BATON_LOG_FORMAT=json."""
    from celery.utils.log import ColorFormatter
    from django.conf import settings

    from engine.observability.context import LogContextFilter
    from engine.observability.logs import JsonFormatter

    for handler in logger.handlers:
        handler.addFilter(LogContextFilter())
        if settings.BATON_LOG_FORMAT == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(ColorFormatter(format + "%(context)s", use_color=colorize))


@worker_ready.connect
def _sweep_when_a_worker_starts(sender: Any = None, **kwargs: Any) -> None:
    # Jobs that a previous worker was running when it died are taken over now, not at the
    # beat's next sweep (the sweep task goes to the events queue).
    with contextlib.suppress(Exception):  # a broker that is not up yet: the beat sweeps later
        app.send_task("baton.sweep_service_jobs")
        app.send_task("baton.sweep_batches")  # batches that stalled while no worker ran
