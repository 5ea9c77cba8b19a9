"""Process analytics read from the hourly roll-ups of element runs (engine.models.ElementRollup):
per element runs, mean and p95 duration, error and incident rates; instances started,
completed and in incident over time; instance durations; connectors; tasks past due.

The roll-ups are kept by `engine.services.element_history` with every operation, so these
queries read a few rows per element and hour, never the runs. Only a business-key prefix
(which the roll-ups do not know) reads the runs of the matching instances instead.
A p95 comes from the roll-ups' duration buckets: interpolated within its bucket.
"""

import datetime
import itertools
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection, models
from django.db.models import Q

from engine.actors import Person
from engine.bpmn.element_runs import element_connectors
from engine.bpmn.serialization import spec_from_json
from engine.exceptions import InvalidInput, NotFound
from engine.models import ElementRun, EventDelivery, HumanTask, ProcessInstance, ServiceJob
from engine.permissions import can_view_insights, is_operator, sees_every_instance
from processes.models import ProcessDefinition

from .my_work import definition_element_names

# Kept in step with engine.services.element_history (selectors never import services).
DURATION_BUCKETS_MS = (
    1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000,
    3_600_000, 14_400_000, 86_400_000, 259_200_000, 604_800_000, 2_592_000_000,
)  # fmt: skip
PROCESS_TYPE = ElementRun.PROCESS_TYPE
INTERVALS = ("hour", "day", "week")
_COUNTS = ("started", "completed", "cancelled", "errors", "incidents", "ended")


@dataclass(frozen=True)
class InsightFilter:
    """Which runs to look at: the versions of one process, a time range (by the hour a run
    started or ended), and optionally the instances whose business key starts so."""

    key: str
    definition_ids: tuple[int, ...]
    since: datetime.datetime
    until: datetime.datetime
    business_key_prefix: str = ""
    # False for users who may not read every instance: runs are shown without their
    # instances (no ids, business keys or actors).
    instance_details: bool = False


@dataclass
class ElementStats:
    element_id: str
    name: str
    element_type: str
    started: int = 0
    completed: int = 0
    cancelled: int = 0
    errors: int = 0
    incidents: int = 0
    ended: int = 0
    duration_ms_sum: int = 0
    buckets: list[int] = field(default_factory=list)
    connector: str = ""

    @property
    def mean_ms(self) -> float | None:
        return self.duration_ms_sum / self.ended if self.ended else None

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.buckets, 0.95)

    @property
    def incident_rate(self) -> float:
        return self.incidents / self.ended if self.ended else 0.0

    @property
    def error_rate(self) -> float:
        return (self.errors + self.incidents) / self.ended if self.ended else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "element_id": self.element_id,
            "name": self.name,
            "element_type": self.element_type,
            "runs": self.started,
            "ended": self.ended,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "errors": self.errors,
            "incidents": self.incidents,
            "mean_ms": _round(self.mean_ms),
            "p95_ms": _round(self.p95_ms),
            "incident_rate": round(self.incident_rate, 4),
            "error_rate": round(self.error_rate, 4),
            "connector": self.connector,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def percentile(buckets: list[int], fraction: float) -> float | None:
    """The `fraction` quantile of durations counted per bucket (interpolated in its bucket)."""
    total = sum(buckets)
    if not total:
        return None
    wanted = fraction * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= wanted:
            low = DURATION_BUCKETS_MS[index - 1] if index else 0
            high = DURATION_BUCKETS_MS[index] if index < len(DURATION_BUCKETS_MS) else low * 2
            return float(low + (high - low) * (wanted - seen) / count)
        seen += count
    return float(DURATION_BUCKETS_MS[-1])


def insight_filter(
    user: Person,
    key: str,
    *,
    version: int | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    business_key_prefix: str = "",
    days: int = 30,
) -> InsightFilter:
    """Check that `user` may see the process's insights and resolve the filter (the last
    `days` days of all versions by default). Only users who may read every instance may
    filter by business key (PermissionDenied otherwise)."""
    if not can_view_insights(user):
        raise PermissionDenied("Only operators and designers see process insights.")
    instance_details = sees_every_instance(user)
    business_key_prefix = business_key_prefix.strip()
    if business_key_prefix and not instance_details:
        raise PermissionDenied("Only operators may filter by business key.")
    definitions = ProcessDefinition.objects.filter(key=key)
    if version is not None:
        definitions = definitions.filter(version=version)
    ids = tuple(definitions.order_by("version").values_list("pk", flat=True))
    if not ids:
        raise NotFound(f"There is no process {key}" + (f" version {version}." if version else "."))
    now = datetime.datetime.now(datetime.UTC)
    until = until or now + datetime.timedelta(hours=1)
    since = since or until - datetime.timedelta(days=days)
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidInput("Dates need a time zone.")
    if since >= until:
        raise InvalidInput("The range must start before it ends.")
    return InsightFilter(key, ids, since, until, business_key_prefix, instance_details)


_ROLLUPS = """
    SELECT element_id, element_type, hour, started, completed, cancelled, errors, incidents,
           ended, duration_ms_sum, buckets
      FROM engine_elementrollup
     WHERE definition_id = ANY(%(ids)s) AND hour >= date_trunc('hour', %(since)s::timestamptz)
       AND hour < %(until)s
"""

# The same shape from the runs of the instances with a business-key prefix.
_RUNS = """
    SELECT r.element_id, r.element_type, date_trunc('hour', r.started_at) AS hour, 1 AS started,
           0 AS completed, 0 AS cancelled, 0 AS errors, 0 AS incidents, 0 AS ended,
           0::bigint AS duration_ms_sum, NULL::int[] AS buckets
      FROM engine_elementrun r JOIN engine_processinstance i ON i.id = r.instance_id
     WHERE r.definition_id = ANY(%(ids)s) AND i.business_key LIKE %(prefix)s
       AND r.started_at >= date_trunc('hour', %(since)s::timestamptz) AND r.started_at < %(until)s
    UNION ALL
    SELECT r.element_id, r.element_type, date_trunc('hour', r.ended_at),
           0, (r.outcome = 'completed')::int, (r.outcome = 'cancelled')::int,
           (r.outcome = 'error')::int, (r.outcome = 'incident')::int, 1, r.duration_ms,
           ARRAY(SELECT (g = width_bucket(r.duration_ms, %(bounds)s::bigint[]))::int
                   FROM generate_series(0, %(last)s) g ORDER BY g)
      FROM engine_elementrun r JOIN engine_processinstance i ON i.id = r.instance_id
     WHERE r.definition_id = ANY(%(ids)s) AND i.business_key LIKE %(prefix)s
       AND r.ended_at >= date_trunc('hour', %(since)s::timestamptz) AND r.ended_at < %(until)s
"""


def _query(flt: InsightFilter, select: str, extra: dict[str, Any] | None = None) -> list[Any]:
    source = _RUNS if flt.business_key_prefix else _ROLLUPS
    params: dict[str, Any] = {
        "ids": list(flt.definition_ids),
        "since": flt.since,
        "until": flt.until,
        "prefix": _like_prefix(flt.business_key_prefix),
        "bounds": list(DURATION_BUCKETS_MS),
        "last": len(DURATION_BUCKETS_MS),
        **(extra or {}),
    }
    with connection.cursor() as cursor:
        cursor.execute(f"WITH src AS ({source}) {select}", params)
        return list(cursor.fetchall())


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@lru_cache(maxsize=256)
def _connectors(definition_id: int) -> dict[str, str]:
    dialect, spec = ProcessDefinition.objects.values_list("dialect", "spec").get(pk=definition_id)
    return element_connectors(*spec_from_json(dialect, spec))


def element_statistics(flt: InsightFilter) -> list[ElementStats]:
    """Per element of the process (the process itself as element type "Process"), ordered by
    element id."""
    totals = _query(
        flt,
        "SELECT element_id, max(element_type), sum(started), sum(completed), sum(cancelled), "
        "sum(errors), sum(incidents), sum(ended), sum(duration_ms_sum) FROM src "
        "GROUP BY element_id ORDER BY element_id",
    )
    buckets = _query(
        flt,
        "SELECT element_id, u.i, sum(u.b) FROM src, unnest(src.buckets) WITH ORDINALITY "
        "AS u(b, i) GROUP BY element_id, u.i",
    )
    names: dict[str, str] = {}
    connectors: dict[str, str] = {}
    for definition_id in flt.definition_ids:
        names.update(definition_element_names(definition_id))
        connectors.update(_connectors(definition_id))
    stats: dict[str, ElementStats] = {}
    for element_id, kind, *counts, duration in totals:
        stats[element_id] = ElementStats(
            element_id,
            names.get(element_id, element_id),
            kind,
            **{name: int(count or 0) for name, count in zip(_COUNTS, counts, strict=True)},
            duration_ms_sum=int(duration or 0),
            buckets=[0] * (len(DURATION_BUCKETS_MS) + 1),
            connector=connectors.get(element_id, ""),
        )
    for element_id, index, count in buckets:
        element = stats.get(element_id)
        if element is not None and 0 < index <= len(element.buckets):
            element.buckets[index - 1] += int(count or 0)
    return list(stats.values())


def over_time(flt: InsightFilter, interval: str = "day") -> list[dict[str, Any]]:
    """Instances started and completed, and incidents opened, per hour, day or week."""
    if interval not in INTERVALS:
        raise InvalidInput(f"The interval is one of {', '.join(INTERVALS)}.")
    rows = _query(
        flt,
        "SELECT date_trunc(%(interval)s, hour) AS t, "
        "sum(started) FILTER (WHERE element_type = %(process)s), "
        "sum(completed) FILTER (WHERE element_type = %(process)s), "
        "sum(incidents) FROM src GROUP BY t ORDER BY t",
        {"interval": interval, "process": PROCESS_TYPE},
    )
    return [
        {
            "at": at,
            "started": int(started or 0),
            "completed": int(completed or 0),
            "incidents": int(incidents or 0),
        }
        for at, started, completed, incidents in rows
    ]


def duration_distribution(stats: list[ElementStats]) -> list[dict[str, Any]]:
    """How many instances took how long (the process's own duration buckets)."""
    process = next((s for s in stats if s.element_type == PROCESS_TYPE), None)
    counts = process.buckets if process else [0] * (len(DURATION_BUCKETS_MS) + 1)
    labels = ["< " + _short(DURATION_BUCKETS_MS[0])] + [
        f"{_short(low)}-{_short(high)}" for low, high in itertools.pairwise(DURATION_BUCKETS_MS)
    ]
    labels.append("≥ " + _short(DURATION_BUCKETS_MS[-1]))
    return [{"label": label, "count": count} for label, count in zip(labels, counts, strict=True)]


def _short(ms: float) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size:
            value = ms / size
            return f"{value:g}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{ms:g}ms"


def short_duration(ms: float | None) -> str:
    """A duration as people read it ("1.5s", "3h")."""
    return "-" if ms is None else _short(round(ms))


def connector_statistics(stats: list[ElementStats]) -> list[dict[str, Any]]:
    """Connectors by error rate, then by p95 latency (their service tasks' runs together)."""
    grouped: dict[str, ElementStats] = {}
    for element in stats:
        if not element.connector:
            continue
        total = grouped.setdefault(
            element.connector,
            ElementStats(element.connector, element.connector, "connector",
                         buckets=[0] * (len(DURATION_BUCKETS_MS) + 1)),
        )  # fmt: skip
        for name in (*_COUNTS, "duration_ms_sum"):
            setattr(total, name, getattr(total, name) + getattr(element, name))
        total.buckets = [a + b for a, b in zip(total.buckets, element.buckets, strict=True)]
    ordered = sorted(grouped.values(), key=lambda s: (-s.error_rate, -(s.p95_ms or 0)))
    return [
        {
            "connector": s.element_id,
            "calls": s.ended,
            "error_rate": round(s.error_rate, 4),
            "mean_ms": _round(s.mean_ms),
            "p95_ms": _round(s.p95_ms),
        }
        for s in ordered
    ]


def overdue_tasks(flt: InsightFilter) -> list[dict[str, Any]]:
    """Open tasks past their due date, by element and candidate group."""
    now = datetime.datetime.now(datetime.UTC)
    query = """
        SELECT t.element_id, COALESCE(g.name, '') AS grp, count(*), min(t.due_at)
          FROM engine_humantask t
          JOIN engine_processinstance i ON i.id = t.instance_id
          LEFT JOIN LATERAL unnest(t.candidate_groups) AS g(name) ON true
         WHERE i.definition_id = ANY(%(ids)s) AND t.status IN ('open', 'claimed')
           AND t.due_at < %(now)s AND (%(prefix)s = '%%' OR i.business_key LIKE %(prefix)s)
         GROUP BY t.element_id, grp ORDER BY count(*) DESC, t.element_id
    """
    params: dict[str, Any] = {
        "ids": list(flt.definition_ids),
        "now": now,
        "prefix": _like_prefix(flt.business_key_prefix),
    }
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    return [
        {"element_id": e, "group": g, "count": int(n), "oldest_due": due} for e, g, n, due in rows
    ]


def slowest_runs(flt: InsightFilter, element_id: str, limit: int = 10) -> list[dict[str, Any]]:
    """The element's slowest ended runs in the range, with their instances (ids, business
    keys, times, actors) only if `flt.instance_details`: durations and outcomes otherwise."""
    runs = ElementRun.objects.filter(
        definition_id__in=flt.definition_ids,
        element_id=element_id,
        duration_ms__isnull=False,
        ended_at__gte=flt.since,
        ended_at__lt=flt.until,
    )
    if flt.business_key_prefix:
        runs = runs.filter(instance__business_key__startswith=flt.business_key_prefix)
    fields = ["duration_ms", "outcome"]
    if flt.instance_details:
        fields += ["instance_id", "instance__business_key", "started_at", "ended_at", "actor"]
    return [dict(run) for run in runs.order_by("-duration_ms").values(*fields)[:limit]]


def past_due_count(flt: InsightFilter) -> int:
    return HumanTask.objects.filter(
        Q(instance__definition_id__in=flt.definition_ids),
        status__in=HumanTask.ACTIVE_STATUSES,
        due_at__lt=datetime.datetime.now(datetime.UTC),
    ).count()


@dataclass(frozen=True)
class EngineSummary:
    active_instances: int
    incidents: int
    queue_depth: int
    running_jobs: int
    oldest_pending_job_at: datetime.datetime | None
    oldest_pending_job_age_seconds: float | None
    pending_deliveries: int


def engine_summary(user: Person) -> EngineSummary:
    """Engine totals for operators: active instances, incidents, service jobs waiting for a
    worker (the queue) and the oldest of them, event deliveries not yet applied."""
    if not is_operator(user):
        raise PermissionDenied("Only operators see the engine's totals.")
    status = ProcessInstance.Status
    counts = ProcessInstance.objects.filter(
        status__in=[status.RUNNING, status.WAITING, status.SUSPENDED, status.INCIDENT]
    ).aggregate(
        active=models.Count("pk"),
        incidents=models.Count("pk", filter=Q(status=status.INCIDENT)),
    )
    jobs = ServiceJob.objects.filter(status__in=ServiceJob.ACTIVE_STATUSES).aggregate(
        pending=models.Count("pk", filter=Q(status=ServiceJob.Status.PENDING)),
        running=models.Count("pk", filter=Q(status=ServiceJob.Status.RUNNING)),
        oldest=models.Min("created_at", filter=Q(status=ServiceJob.Status.PENDING)),
    )
    oldest = jobs["oldest"]
    now = datetime.datetime.now(datetime.UTC)
    return EngineSummary(
        active_instances=counts["active"],
        incidents=counts["incidents"],
        queue_depth=jobs["pending"],
        running_jobs=jobs["running"],
        oldest_pending_job_at=oldest,
        oldest_pending_job_age_seconds=(now - oldest).total_seconds() if oldest else None,
        pending_deliveries=EventDelivery.objects.filter(
            status=EventDelivery.Status.PENDING
        ).count(),
    )
