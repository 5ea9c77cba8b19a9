"""The processes that run Baton, defined once: what `make run` starts (config/devstack.py), what
the benchmarks and the fault tests start (bench/common.py, tests/faults/stack.py) and what the
README and docs/scaling.md tell a deployment to run.

- web: gunicorn, gthread workers (WEB_WORKERS, default one per CPU) with WEB_THREADS threads
  each (default 4). A request holds a thread while it waits for Postgres, so a few threads per
  process keep a core busy; more processes than cores only add context switches.
- jobs worker: `celery worker -Q <jobs queue>`, prefork with JOB_CONCURRENCY pool processes
  (default two per CPU: a service job spends most of its time waiting for the API it calls).
- events worker: `celery worker -Q <events queue>` (timer ticks, the sweep, event deliveries),
  EVENTS_CONCURRENCY pool processes (default 1), never behind service jobs.
- beat: `celery beat`, exactly one per deployment.

No Django here: the supervisor, the benchmarks and the fault tests import this module before
any settings exist.
"""

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from .queues import events_queue, job_queue

WEB_THREADS_DEFAULT = 4
# gunicorn: a request may take this long before its worker is restarted; on SIGTERM, requests
# in flight get this long to finish.
WEB_TIMEOUT_SECONDS = 60
WEB_GRACEFUL_TIMEOUT_SECONDS = 5
# An idle keep-alive connection is closed after this long; gthread parks idle connections
# in its poller, so they hold no thread meanwhile.
WEB_KEEP_ALIVE_SECONDS = 5


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None
    if count < 1:
        raise ValueError(f"{name} must be at least 1, not {count}")
    return count


@dataclass(frozen=True)
class Sizing:
    """How many web workers and threads, and how many pool processes per Celery worker."""

    web_workers: int
    web_threads: int
    job_concurrency: int
    events_concurrency: int

    @classmethod
    def for_machine(cls, environ: Mapping[str, str] | None = None) -> "Sizing":
        """From the CPUs of this machine, each overridable by its environment variable."""
        environ = os.environ if environ is None else environ
        cpus = os.cpu_count() or 1
        return cls(
            web_workers=_count(environ, "WEB_WORKERS", cpus),
            web_threads=_count(environ, "WEB_THREADS", WEB_THREADS_DEFAULT),
            job_concurrency=_count(environ, "JOB_CONCURRENCY", 2 * cpus),
            events_concurrency=_count(environ, "EVENTS_CONCURRENCY", 1),
        )

    def describe(self) -> str:
        return (
            f"gunicorn gthread {self.web_workers} workers x {self.web_threads} threads; "
            f"jobs worker {self.job_concurrency} processes; "
            f"events worker {self.events_concurrency}"
        )


def environment(environ: Mapping[str, str], settings_module: str) -> dict[str, str]:
    """The environment of every Baton process: `environ` with its settings module (gunicorn's
    WSGI module and `celery -A config` would otherwise pick the production settings) and
    unbuffered output, so that log lines reach the terminal or log file as they happen."""
    return {**environ, "DJANGO_SETTINGS_MODULE": settings_module, "PYTHONUNBUFFERED": "1"}


def web_command(
    bind: str,
    sizing: Sizing,
    *,
    log_level: str = "warning",
    access_log: str | None = None,
    access_log_format: str | None = None,
) -> list[str]:
    """gunicorn serving config.wsgi on `bind` (host:port). Static files are served by the
    application itself (WhiteNoise), so nothing else is needed in front of it on one machine."""
    access = [] if access_log is None else ["--access-logfile", access_log]
    if access_log_format is not None:
        access += ["--access-logformat", access_log_format]
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "--bind",
        bind,
        "--worker-class",
        "gthread",
        "--workers",
        str(sizing.web_workers),
        "--threads",
        str(sizing.web_threads),
        "--keep-alive",
        str(WEB_KEEP_ALIVE_SECONDS),
        "--timeout",
        str(WEB_TIMEOUT_SECONDS),
        "--graceful-timeout",
        str(WEB_GRACEFUL_TIMEOUT_SECONDS),
        # The workers' heartbeat files in memory, not on a disk that may stall them.
        "--worker-tmp-dir",
        "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp",  # noqa: S108 -- gunicorn's own files
        "--log-level",
        log_level,
        *access,
    ]


def reloading_web_command(bind: str) -> list[str]:
    """Django's development server with auto-reload (BATON_RELOAD=1): one process, restarted
    on every code change; much slower than gunicorn, for working on Baton itself. --insecure:
    it serves the static files from the apps' directories as they change."""
    return [sys.executable, "manage.py", "runserver", bind, "--insecure"]


def _celery(quiet: bool) -> list[str]:
    return [sys.executable, "-m", "celery", *(["-q"] if quiet else []), "-A", "config"]


def _worker_command(queue: str, concurrency: int, node_name: str, log_level: str) -> list[str]:
    return [
        *_celery(quiet=log_level != "info"),
        "worker",
        "-l",
        log_level,
        "--concurrency",
        str(concurrency),
        "-Q",
        queue,
        "-n",
        node_name,
        # No worker-to-worker chatter on the broker: Baton's workers share nothing through
        # Celery's gossip, mingle or event heartbeats (remote control, `inspect ping`, stays).
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def jobs_worker_command(
    environ: Mapping[str, str],
    sizing: Sizing,
    node_name: str = "jobs@%h",
    *,
    log_level: str = "info",
) -> list[str]:
    """The service-job worker (prefork). At info it logs each job it runs."""
    return _worker_command(job_queue(environ), sizing.job_concurrency, node_name, log_level)


def events_worker_command(
    environ: Mapping[str, str],
    sizing: Sizing,
    node_name: str = "events@%h",
    *,
    log_level: str = "warning",
) -> list[str]:
    """Timer ticks, the sweep, event deliveries. They run every second: at the info level
    they would print three lines a second, so warnings and errors only by default."""
    queue = events_queue(environ)
    return _worker_command(queue, sizing.events_concurrency, node_name, log_level)


def beat_command(schedule_file: str, *, log_level: str = "warning") -> list[str]:
    return [
        *_celery(quiet=log_level != "info"),
        "beat",
        "-l",
        log_level,
        "--schedule",
        schedule_file,
    ]
