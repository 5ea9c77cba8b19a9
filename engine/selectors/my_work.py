"""Read-only queries for starters following their work: the instances a user started (the
"my work" list), one instance's read-only page, and where an instance stands in words.

Who may follow which instance is decided in `engine.permissions`
(`started_instances_q`, `followable_instances_q`); these only narrow it down."""

import uuid
from dataclasses import dataclass
from functools import lru_cache

from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet

from engine.actors import Person
from engine.bpmn.names import element_names
from engine.bpmn.serialization import spec_from_json
from engine.models import HumanTask, ProcessInstance, ServiceJob
from engine.permissions import can_follow_instance, started_instances_q
from processes.models import ProcessDefinition

from .instances import EVENT_PREFETCHES, HEAVY_FIELDS, instance_detail, instance_waits

# The "my work" list's status filter: a name -> the statuses it shows.
MY_WORK_FILTERS: dict[str, tuple[str, ...]] = {
    "open": (
        ProcessInstance.Status.RUNNING,
        ProcessInstance.Status.WAITING,
        ProcessInstance.Status.SUSPENDED,
        ProcessInstance.Status.INCIDENT,
    ),
    "incident": (ProcessInstance.Status.INCIDENT,),
    "finished": (ProcessInstance.Status.COMPLETED, ProcessInstance.Status.TERMINATED),
}


@lru_cache(maxsize=512)
def definition_element_names(definition_id: int) -> dict[str, str]:
    """Element id -> name for one definition (definitions never change once deployed)."""
    dialect, spec = ProcessDefinition.objects.values_list("dialect", "spec").get(pk=definition_id)
    return element_names(*spec_from_json(dialect, spec))


@dataclass(frozen=True)
class Step:
    """Where an instance stands: one element it waits at, named as the diagram names it."""

    element_id: str
    name: str
    kind: str  # "task", "service", "timer", "message", "signal" or "incident"
    task_id: uuid.UUID | None = None  # the human task, for its candidates to open


def _active_tasks() -> Prefetch:
    return Prefetch(
        "human_tasks",
        queryset=HumanTask.objects.filter(status__in=HumanTask.ACTIVE_STATUSES)
        .defer("form", "submitted_data")
        .order_by("created_at"),
        to_attr="active_tasks",
    )


def _open_jobs() -> Prefetch:
    return Prefetch(
        "jobs",
        queryset=ServiceJob.objects.filter(status__in=ServiceJob.OPEN_STATUSES)
        .only("id", "instance_id", "element_id", "status")
        .order_by("created_at"),
        to_attr="open_jobs",
    )


def _followed_instances() -> QuerySet[ProcessInstance]:
    return (
        ProcessInstance.objects.select_related("definition", "started_by")
        .defer(*HEAVY_FIELDS)
        .prefetch_related(_active_tasks(), _open_jobs(), *EVENT_PREFETCHES)
    )


def started_instances(user: Person, *, show: str | None = None) -> QuerySet[ProcessInstance]:
    """The instances `user` started, newest first; `show` narrows to a `MY_WORK_FILTERS`
    entry (unknown names show all)."""
    instances = _followed_instances().filter(started_instances_q(user))
    statuses = MY_WORK_FILTERS.get(show or "")
    if statuses:
        instances = instances.filter(status__in=statuses)
    return instances.order_by("-created_at", "id")


def followed_instance_for(instance_id: uuid.UUID | str, user: Person) -> ProcessInstance:
    """The instance, for its read-only page, if `user` may follow it (its starter, an
    operator); `NotFound` if there is none."""
    instance = instance_detail(instance_id)
    if not can_follow_instance(user, instance):
        raise PermissionDenied("Only whoever started this instance, or an operator, follows it.")
    return _followed_instances().get(pk=instance.pk)


def current_steps(instance: ProcessInstance) -> list[Step]:
    """The elements the instance waits at, by name: its open human tasks, its service calls,
    timers, messages and signals, and where it failed. Nothing for a finished instance.
    Uses the prefetches of `started_instances` / `followed_instance_for` when present."""
    if instance.is_finished:
        return []
    names = definition_element_names(instance.definition_id)
    steps: list[Step] = []

    def add(element_id: str, kind: str, task_id: uuid.UUID | None = None) -> None:
        if not any(step.element_id == element_id for step in steps):
            steps.append(Step(element_id, names.get(element_id, element_id), kind, task_id))

    incident = instance.incident or {}
    if instance.status == ProcessInstance.Status.INCIDENT and incident.get("element_id"):
        add(str(incident["element_id"]), "incident")
    tasks = getattr(instance, "active_tasks", None)
    if tasks is None:
        tasks = list(instance.human_tasks.filter(status__in=HumanTask.ACTIVE_STATUSES))
    for task in tasks:
        add(task.element_id, "task", task.id)
    jobs = getattr(instance, "open_jobs", None)
    if jobs is None:
        jobs = list(instance.jobs.filter(status__in=ServiceJob.OPEN_STATUSES))
    for job in jobs:
        add(job.element_id, "incident" if job.status == ServiceJob.Status.DEAD else "service")
    waits = instance_waits(instance)
    for timer in waits.timers:
        add(timer.element_id, "timer")
    for message in waits.messages:
        add(message.element_id, "message")
    for signal in waits.signals:
        add(signal.element_id, "signal")
    return steps
