"""Baton's Prometheus metrics, counted where the events happen.

Across processes (gunicorn workers, Celery pool children) the values are shared through
prometheus_client's multiprocess mode: every process that has PROMETHEUS_MULTIPROC_DIR in its
environment when it imports prometheus_client writes its values to files there, and `/metrics`
adds them up (config/metrics.py). `make run` sets that directory up, emptied at each start.

Labels stay few and bounded: the process key, the element id (both from deployed diagrams),
the connector, the called host, an outcome from a fixed set. Never a variable or a URL path.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Counter, Histogram

# Seconds: from a fast script to a slow API or a person's approval (a day).
_WORK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)
_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

INSTANCES_STARTED = Counter("baton_instances_started", "Process instances started.", ["process"])
INSTANCES_COMPLETED = Counter(
    "baton_instances_completed", "Process instances that reached their end.", ["process"]
)
INSTANCES_INCIDENT = Counter(
    "baton_instances_incident", "Times an instance went into incident.", ["process"]
)
ELEMENT_DURATION = Histogram(
    "baton_element_duration_seconds",
    "How long a waiting element took: a human task from creation to completion, a service "
    "task from its job's creation to its result.",
    ["process", "element", "type"],
    buckets=_WORK_BUCKETS,
)
JOB_ATTEMPTS = Counter(
    "baton_job_attempts",
    "Connector calls of service jobs, by outcome (succeeded, accepted, retry, error, incident).",
    ["connector", "host", "outcome"],
)
JOB_ERRORS = Counter(
    "baton_job_errors",
    "Connector calls of service jobs that did not succeed (retried, BPMN error or incident).",
    ["connector", "host", "kind"],
)
JOB_DURATION = Histogram(
    "baton_job_duration_seconds",
    "How long a connector call took.",
    ["connector", "host"],
    buckets=_WORK_BUCKETS,
)
JOB_WAIT = Histogram(
    "baton_job_wait_seconds",
    "From when a job was due to when a worker took it (queue latency).",
    ["connector"],
    buckets=_WORK_BUCKETS,
)
TIMER_LATENESS = Histogram(
    "baton_timer_lateness_seconds",
    "How late a timer fired after its due time.",
    ["process"],
    buckets=(*_FAST_BUCKETS, 30, 60, 300),
)
SCRIPT_DURATION = Histogram(
    "baton_script_seconds",
    "Wall time of one evaluation in the script sandbox (script task, expression, condition).",
    ["mode"],
    buckets=_FAST_BUCKETS,
)
HTTP_REQUEST_DURATION = Histogram(
    "baton_http_request_duration_seconds",
    "Server time of Baton's own HTTP requests, by route pattern.",
    ["method", "route", "status"],
    buckets=_FAST_BUCKETS,
)


def host_of(parameters: Any) -> str:
    """The host (and port) a job calls, from its stored parameters' `url`; "" when it has
    none. Stored parameters never hold secret values (`secret:NAME` references at most), and a
    host that is such a reference is not shown."""
    url = parameters.get("url") if isinstance(parameters, dict) else None
    if not isinstance(url, str) or "secret:" in url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return ""


@contextmanager
def timed(histogram: Histogram, **labels: str) -> Iterator[None]:
    """Observe how long the block took (also when it raises)."""
    began = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(**labels).observe(time.perf_counter() - began)
