"""Read-only queries of instances: who may read which, their details, what they wait for,
their history, and how many each process has."""

import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, Q, QuerySet

from engine.actors import Person
from engine.exceptions import NotFound
from engine.models import (
    HumanTask,
    InstanceEvent,
    MessageSubscription,
    ProcessInstance,
    ServiceJob,
    SignalSubscription,
    Timer,
)
from engine.permissions import can_see_instance, visible_instances_q
from processes.models import ProcessDefinition

# What an instance waits for besides tasks and jobs (see waiting_for_events).
EVENT_PREFETCHES = (
    Prefetch(
        "timers",
        queryset=Timer.objects.filter(fired=False).order_by("due_at"),
        to_attr="unfired_timers",
    ),
    "message_subscriptions",
    "signal_subscriptions",
)
# Large columns a detail or a list never shows.
HEAVY_FIELDS = ("state", *ProcessDefinition.bulk_fields("definition__"))


@dataclass
class InstanceWaits:
    """The timers, messages and signals an instance waits for (besides tasks and jobs)."""

    timers: list[Timer]
    messages: list[MessageSubscription]
    signals: list[SignalSubscription]

    def __bool__(self) -> bool:
        return bool(self.timers or self.messages or self.signals)


def instance_waits(instance: ProcessInstance) -> InstanceWaits:
    timers = getattr(instance, "unfired_timers", None)
    if timers is None:
        timers = list(instance.timers.filter(fired=False).order_by("due_at"))
    return InstanceWaits(
        list(timers),
        list(instance.message_subscriptions.all()),
        list(instance.signal_subscriptions.all()),
    )


def waiting_for_events(instance: ProcessInstance) -> list[dict[str, Any]]:
    """The timers (with their due time), messages and signals an instance waits for."""
    waits = instance_waits(instance)
    waiting: list[dict[str, Any]] = [
        {"type": "timer", "element_id": t.element_id, "due_at": t.due_at.isoformat()}
        for t in waits.timers
    ]
    waiting.extend(
        {
            "type": "message",
            "element_id": m.element_id,
            "message": m.message_name,
            "correlation": m.correlation,
        }
        for m in waits.messages
    )
    waiting.extend(
        {"type": "signal", "element_id": s.element_id, "signal": s.signal_name}
        for s in waits.signals
    )
    return waiting


@dataclass
class WrittenRows:
    """Every related row of an instance that was just started, as its start wrote them."""

    human_tasks: list[HumanTask]
    jobs: list[ServiceJob]
    timers: list[Timer]
    messages: list[MessageSubscription]
    signals: list[SignalSubscription]


_WRITTEN = "baton_written_rows"


def remember_rows(instance: ProcessInstance, rows: WrittenRows) -> None:
    """Keep on a new instance the rows its start wrote (for `new_instance_detail`)."""
    setattr(instance, _WRITTEN, rows)


def new_instance_detail(instance: ProcessInstance) -> ProcessInstance:
    """The detail of an instance just started, answered from the rows its start wrote
    (`remember_rows`) instead of reading them again; read when they are not known. The
    relations are filled as `instance_detail` prefetches them, in the models' order."""
    rows: WrittenRows | None = getattr(instance, _WRITTEN, None)
    if rows is None:
        return instance_detail(instance.pk)
    known: dict[str, list[Any]] = {
        "human_tasks": sorted(rows.human_tasks, key=lambda task: (-task.priority, task.created_at)),
        "jobs": sorted(rows.jobs, key=lambda job: job.created_at),
        "message_subscriptions": list(rows.messages),
        "signal_subscriptions": list(rows.signals),
    }
    cache: dict[str, QuerySet[Any]] = instance.__dict__.setdefault("_prefetched_objects_cache", {})
    for name, related in known.items():
        queryset = getattr(instance, name).all()  # builds a query, runs none
        # As prefetch_related leaves a prefetched relation; Django has no public setter.
        queryset._result_cache = related  # noqa: SLF001
        queryset._prefetch_done = True  # noqa: SLF001
        cache[name] = queryset
    instance.unfired_timers = sorted(rows.timers, key=lambda timer: timer.due_at)  # type: ignore[attr-defined]
    return instance


def _detailed_instances() -> QuerySet[ProcessInstance]:
    return (
        ProcessInstance.objects.select_related("definition", "started_by")
        .defer(*HEAVY_FIELDS)
        .prefetch_related("human_tasks", "jobs", *EVENT_PREFETCHES)
    )


def instance_detail(instance_id: uuid.UUID | str) -> ProcessInstance:
    instance = _detailed_instances().filter(pk=instance_id).first()
    if instance is None:
        raise NotFound(f"There is no instance {instance_id}.")
    return instance


def visible_instances(
    user: Person,
    *,
    status: str | None = None,
    definition: str | None = None,
    business_key: str | None = None,
) -> QuerySet[ProcessInstance]:
    """Instances `user` may read (`permissions.visible_instances_q`), newest first."""
    instances = _detailed_instances().filter(visible_instances_q(user))
    if status:
        instances = instances.filter(status=status)
    if definition:
        instances = instances.filter(definition__key=definition)
    if business_key:
        instances = instances.filter(business_key=business_key)
    return instances.order_by("-created_at", "id")


def instance_history(instance: ProcessInstance) -> QuerySet[InstanceEvent]:
    return instance.events.select_related("actor").order_by("created_at", "id")


def instance_detail_for(instance_id: uuid.UUID | str, user: Person) -> ProcessInstance:
    """The instance, if `user` may read it: the same rule as `visible_instances`."""
    instance = instance_detail(instance_id)
    if not can_see_instance(user, instance):
        raise PermissionDenied("You have no task in this instance and are not an operator.")
    return instance


@dataclass(frozen=True)
class InstanceCounts:
    active: int = 0
    total: int = 0


def instance_counts_by_key() -> dict[str, InstanceCounts]:
    """Instances of every process key, all versions together: not yet finished, and all."""
    finished = [ProcessInstance.Status.COMPLETED, ProcessInstance.Status.TERMINATED]
    rows = (
        ProcessInstance.objects.values("definition__key")
        .annotate(total=Count("id"), active=Count("id", filter=~Q(status__in=finished)))
        .order_by()
    )
    return {row["definition__key"]: InstanceCounts(row["active"], row["total"]) for row in rows}
