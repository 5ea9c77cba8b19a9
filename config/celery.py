"""The Celery application shared by the web process, the workers and the beat."""
import os
from typing import Any

from celery import Celery
from celery.signals import task_prerun

# Production's, as for WSGI and ASGI: a worker started without DJANGO_SETTINGS_MODULE gets
# the production outbound policy, not development's. `make run` names the dev settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")

app = Celery("baton")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _drop_stale_database_connections(**kwargs: Any) -> None:
    # What Django does around each web request, done around each task.
    from django.db import close_old_connections

    close_old_connections()
