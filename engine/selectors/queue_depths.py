"""How much work waits right now, read when Prometheus scrapes `/metrics` (a few counts,
not counters: counters are incremented where their events happen)."""

from collections.abc import Iterator

from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.models import ServiceJob, Timer
from engine.queueing import jobs_waiting_in_queue

WAITING_JOB_STATUSES = (ServiceJob.Status.PENDING, ServiceJob.Status.RUNNING)


def job_counts() -> dict[str, int]:
    rows = (
        ServiceJob.objects.filter(status__in=WAITING_JOB_STATUSES)
        .values("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {str(status): 0 for status in WAITING_JOB_STATUSES}
    counts.update({str(row["status"]): int(row["n"]) for row in rows})
    return counts


def due_timers() -> int:
    return Timer.objects.filter(fired=False, due_at__lte=timezone.now()).count()


class QueueDepthCollector(Collector):
    """Service jobs pending and running (the database's outbox), messages waiting in the
    broker's job queue, timers due and not fired yet."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "baton_jobs", "Service jobs waiting or running, by status.", labels=["status"]
        )
        for status, count in job_counts().items():
            jobs.add_metric([status], count)
        yield jobs
        yield GaugeMetricFamily(
            "baton_timers_due", "Timers due and not fired yet.", value=due_timers()
        )
        try:
            waiting = jobs_waiting_in_queue()
        except Exception:  # noqa: BLE001 -- the broker is down: the metric is left out
            return
        yield GaugeMetricFamily(
            "baton_broker_jobs_waiting",
            "Messages of service jobs waiting in the broker's queue.",
            value=waiting,
        )
