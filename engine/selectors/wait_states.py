"""Why an instance is waiting, in words: for whom a task waits and since when, when a timer
is due, which message (and with what correlation) it expects, a service call retrying, an
incident. One list for the admin's instance page and the starter's /instances/<id>/ page;
`WAIT_KINDS` and `waiting_for` let the admin list filter by kind."""

import datetime
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.timesince import timesince

from engine.models import (
    HumanTask,
    MessageSubscription,
    ProcessInstance,
    ServiceJob,
    SignalSubscription,
    Timer,
)

from .instances import instance_waits
from .my_work import definition_element_names

# The jobs an instance waits for: in flight, or parked until their API calls back.
WAITING_JOB_STATUSES = (*ServiceJob.ACTIVE_STATUSES, ServiceJob.Status.WAITING)

WAIT_KINDS: dict[str, str] = {
    "task": "someone",
    "timer": "a timer",
    "message": "a message",
    "signal": "a signal",
    "service": "a service call",
    "incident": "an incident",
}


@dataclass(frozen=True)
class WaitState:
    kind: str  # a WAIT_KINDS key
    element_id: str
    element_name: str
    text: str  # "waiting for someone in managers since 2 days (due tomorrow)"
    since: datetime.datetime | None = None


def _day(when: datetime.datetime, now: datetime.datetime) -> str:
    """ "today 14:05", "tomorrow 09:00", "yesterday 17:30", or "2025-03-04 14:05"."""
    local, today = timezone.localtime(when), timezone.localtime(now).date()
    days = (local.date() - today).days
    names = {0: "today", 1: "tomorrow", -1: "yesterday"}
    return f"{names.get(days, local.date().isoformat())} {local:%H:%M}"


def _due(when: datetime.datetime, now: datetime.datetime) -> str:
    """ "due tomorrow", "overdue since yesterday" (the day only; the hour with a timer)."""
    local, today = timezone.localtime(when), timezone.localtime(now).date()
    days = (local.date() - today).days
    word = {0: "today", 1: "tomorrow", -1: "yesterday"}.get(days, local.date().isoformat())
    return f"overdue since {word}" if when < now else f"due {word}"


def _who(task: HumanTask) -> str:
    if task.assignee:
        return task.assignee
    parts = []
    if task.candidate_groups:
        parts.append("in " + ", ".join(task.candidate_groups))
    if task.candidate_users:
        parts.append(", ".join(task.candidate_users))
    return "someone " + " or ".join(parts) if parts else "whoever started it"


def _callback_text(job: ServiceJob, now: datetime.datetime) -> str:
    """ "waiting for callback from api.example.com since today 14:05 (timeout tomorrow 14:05)"."""
    host = urlsplit(str(job.parameters.get("url") or "")).hostname or job.connector
    text = f"waiting for callback from {host} since {_day(job.updated_at, now)}"
    if job.callback_until is not None:
        text += f" (timeout {_day(job.callback_until, now)})"
    return text


def _job_text(job: ServiceJob, now: datetime.datetime) -> str:
    call = f"{job.connector} call"
    if job.status == ServiceJob.Status.WAITING:
        return _callback_text(job, now)
    if job.status == ServiceJob.Status.RUNNING:
        since = job.started_at or job.updated_at
        return f"{call} running since {_day(since, now)}"
    failures = job.attempt
    code = f" ({job.error_code or _short_error(job.last_error)})" if job.last_error else ""
    if failures and job.next_attempt_at is not None:
        plural = "failure" if failures == 1 else "failures"
        return (
            f"{call} retrying at {_day(job.next_attempt_at, now)} after {failures} {plural}{code}"
        )
    return f"{call} queued since {_day(job.created_at, now)}"


def _short_error(error: str) -> str:
    first = error.split(":", 1)[0].strip()
    return first[:40] or "error"


def _correlation(values: dict[str, object]) -> str:
    return ", ".join(f"{name}={value}" for name, value in sorted(values.items()))


def wait_states(instance: ProcessInstance) -> list[WaitState]:
    """What the instance waits for, in words (nothing once it is finished). Uses the
    prefetches of `started_instances`/`followed_instance_for` when present."""
    if instance.is_finished:
        return []
    now = timezone.now()
    names = definition_element_names(instance.definition_id)
    found: list[WaitState] = []

    def add(kind: str, element_id: str, text: str, since: datetime.datetime | None) -> None:
        found.append(WaitState(kind, element_id, names.get(element_id, element_id), text, since))

    if instance.status == ProcessInstance.Status.INCIDENT:
        found.append(_incident(instance, names, now))
    tasks = getattr(instance, "active_tasks", None)
    if tasks is None:
        tasks = list(instance.human_tasks.filter(status__in=HumanTask.ACTIVE_STATUSES))
    for task in tasks:
        text = f"waiting for {_who(task)} since {timesince(task.created_at, now)}"
        if task.due_at is not None:
            text += f" ({_due(task.due_at, now)})"
        add("task", task.element_id, text, task.created_at)
    for job in instance.jobs.filter(status__in=WAITING_JOB_STATUSES).order_by("created_at"):
        add("service", job.element_id, _job_text(job, now), job.created_at)
    waits = instance_waits(instance)
    for timer in waits.timers:
        add("timer", timer.element_id, f"timer due {_day(timer.due_at, now)}", timer.created_at)
    for message in waits.messages:
        add("message", message.element_id, _message_text(instance, message), message.created_at)
    for signal in waits.signals:
        add("signal", signal.element_id, f"signal {signal.signal_name}", signal.created_at)
    return found


def _message_text(instance: ProcessInstance, message: MessageSubscription) -> str:
    text = f"message {message.message_name}"
    if message.correlation:
        return f"{text} with {_correlation(message.correlation)}"
    if instance.business_key:
        return f"{text} for business key {instance.business_key}"
    return text


def _incident(
    instance: ProcessInstance, names: dict[str, str], now: datetime.datetime
) -> WaitState:
    incident = instance.incident or {}
    since = _parse(incident.get("since")) or instance.updated_at
    error = str(incident.get("error") or "").strip()
    element_id = str(incident.get("element_id") or "")
    text = f"incident since {_day(since, now)}" + (f": {error[:200]}" if error else "")
    return WaitState("incident", element_id, names.get(element_id, element_id), text, since)


def _parse(value: object) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError:
        return None


def waiting_for(instances: QuerySet[ProcessInstance], kind: str) -> QuerySet[ProcessInstance]:
    """The unfinished instances among `instances` that wait for `kind` (a WAIT_KINDS key)."""
    mine = Q(instance=OuterRef("pk"))
    conditions = {
        "task": Exists(HumanTask.objects.filter(mine, status__in=HumanTask.ACTIVE_STATUSES)),
        "timer": Exists(Timer.objects.filter(mine, fired=False)),
        "message": Exists(MessageSubscription.objects.filter(mine)),
        "signal": Exists(SignalSubscription.objects.filter(mine)),
        "service": Exists(ServiceJob.objects.filter(mine, status__in=WAITING_JOB_STATUSES)),
    }
    unfinished = instances.exclude(
        status__in=[ProcessInstance.Status.COMPLETED, ProcessInstance.Status.TERMINATED]
    )
    if kind == "incident":
        return unfinished.filter(status=ProcessInstance.Status.INCIDENT)
    if kind not in conditions:
        return instances
    return unfinished.filter(conditions[kind])
