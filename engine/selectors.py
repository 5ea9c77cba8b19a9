"""Read-only queries of the engine's state."""
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet

from processes.models import ProcessDefinition

from .actors import Person
from .bpmn.inspection import element_markers, reset_targets, skippable_tasks
from .exceptions import NotFound
from .models import (
    HumanTask,
    InstanceEvent,
    MessageSubscription,
    ProcessInstance,
    ServiceJob,
    SignalSubscription,
    Timer,
)
from .permissions import can_see_task, group_names, is_operator
from .services.execution import load_workflow

# What an instance waits for besides tasks and jobs (see waiting_for_events).
EVENT_PREFETCHES = (
    Prefetch("timers", queryset=Timer.objects.filter(fired=False).order_by("due_at"),
             to_attr="unfired_timers"),
    "message_subscriptions",
    "signal_subscriptions",
)


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
    return InstanceWaits(list(timers), list(instance.message_subscriptions.all()),
                         list(instance.signal_subscriptions.all()))


def waiting_for_events(instance: ProcessInstance) -> list[dict[str, Any]]:
    """The timers (with their due time), messages and signals an instance waits for."""
    waits = instance_waits(instance)
    waiting: list[dict[str, Any]] = [
        {"type": "timer", "element_id": t.element_id, "due_at": t.due_at.isoformat()}
        for t in waits.timers
    ]
    waiting.extend(
        {"type": "message", "element_id": m.element_id, "message": m.message_name,
         "correlation": m.correlation}
        for m in waits.messages
    )
    waiting.extend(
        {"type": "signal", "element_id": s.element_id, "signal": s.signal_name}
        for s in waits.signals
    )
    return waiting


def instance_detail(instance_id: uuid.UUID | str) -> ProcessInstance:
    instance = (
        ProcessInstance.objects.select_related("definition", "started_by")
        .defer("state", "definition__spec", "definition__bpmn_xml", "definition__elements")
        .prefetch_related("human_tasks", "jobs", *EVENT_PREFETCHES)
        .filter(pk=instance_id)
        .first()
    )
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
    """Instances `user` may see: all for operators; otherwise those they started or have a
    task in (as assignee, candidate or the person who completed it)."""
    instances = ProcessInstance.objects.select_related("definition", "started_by").defer(
        "state", "definition__spec", "definition__bpmn_xml", "definition__elements"
    ).prefetch_related("human_tasks", "jobs", *EVENT_PREFETCHES)
    if not user.is_authenticated:
        return instances.none()
    if not is_operator(user):
        tasks = HumanTask.objects.filter(instance=OuterRef("pk")).filter(
            _actionable_for(user) | Q(completed_by=user.pk)
        )
        instances = instances.filter(Q(started_by=user.pk) | Exists(tasks))
    if status:
        instances = instances.filter(status=status)
    if definition:
        instances = instances.filter(definition__key=definition)
    if business_key:
        instances = instances.filter(business_key=business_key)
    return instances.order_by("-created_at", "id")


def instance_history(instance: ProcessInstance) -> QuerySet[InstanceEvent]:
    return instance.events.select_related("actor").order_by("created_at", "id")


def _may_see_instance(user: Person, instance: ProcessInstance) -> bool:
    if not user.is_authenticated:
        return False
    if is_operator(user) or instance.started_by_id == user.pk:
        return True
    return any(
        task.assignee == user.get_username() or task.completed_by_id == user.pk
        or user.get_username() in task.candidate_users
        or group_names(user).intersection(task.candidate_groups)
        for task in instance.human_tasks.all()
    )


def instance_detail_for(instance_id: uuid.UUID | str, user: Person) -> ProcessInstance:
    """The instance, if `user` started it, has a task in it, or is an operator."""
    instance = instance_detail(instance_id)
    if not _may_see_instance(user, instance):
        raise PermissionDenied("You have no task in this instance and are not an operator.")
    return instance


def _actionable_for(user: Person) -> Q:
    username = user.get_username()
    candidate = Q(candidate_users__contains=[username])
    groups = sorted(group_names(user))
    if groups:
        candidate |= Q(candidate_groups__overlap=groups)
    return Q(assignee=username) | (Q(assignee__isnull=True) & candidate)


def _task_instances(*, with_variables: bool) -> Prefetch:
    """Instances of a page of tasks, fetched by key after the page is cut: joining them into
    the task query would make Postgres sort and limit over the join."""
    light = ["state", "definition__spec", "definition__bpmn_xml", "definition__elements"]
    if not with_variables:
        light.append("variables")
    return Prefetch("instance", queryset=ProcessInstance.objects.select_related(
        "definition").defer(*light))


def tasks_for_user(
    user: Person,
    *,
    mine: bool = False,
    group: str | None = None,
    instance: str | None = None,
    status: str | None = None,
) -> QuerySet[HumanTask]:
    """Tasks `user` can act on (open or claimed by them), or that they completed."""
    tasks = HumanTask.objects.prefetch_related(_task_instances(with_variables=False))
    if not user.is_authenticated:
        return tasks.none()
    if status == HumanTask.Status.COMPLETED:
        tasks = tasks.filter(status=HumanTask.Status.COMPLETED, completed_by=user.pk)
    elif mine:
        tasks = tasks.filter(status__in=HumanTask.ACTIVE_STATUSES, assignee=user.get_username())
    else:
        tasks = tasks.filter(_actionable_for(user), status__in=HumanTask.ACTIVE_STATUSES)
    if group:
        if group not in group_names(user):
            return tasks.none()
        tasks = tasks.filter(candidate_groups__contains=[group])
    if instance:
        try:
            tasks = tasks.filter(instance_id=uuid.UUID(instance))
        except ValueError:
            return tasks.none()
    return tasks.order_by("-priority", "created_at", "id")


def task_detail(task_id: uuid.UUID | str) -> HumanTask:
    task = HumanTask.objects.select_related("instance__definition").filter(pk=task_id).first()
    if task is None:
        raise NotFound(f"There is no task {task_id}.")
    return task


def task_detail_for(task_id: uuid.UUID | str, user: Person) -> HumanTask:
    """The task, if `user` may see it (assignee, candidate, the one who completed it)."""
    task = task_detail(task_id)
    completed_it = user.is_authenticated and task.completed_by_id == user.pk
    if not (can_see_task(user, task) or completed_it):
        raise PermissionDenied("You are neither the assignee nor a candidate for this task.")
    return task


INBOX_SORTS = {
    "created": ("created_at", "id"),
    "-created": ("-created_at", "id"),
    "due": ("due_at", "created_at"),
    "priority": ("-priority", "created_at"),
    "name": ("name", "created_at"),
    "-completed": ("-completed_at", "id"),
}


def inbox_tasks(
    user: Person,
    *,
    tab: str = "mine",
    process: str | None = None,
    search: str | None = None,
    sort: str = "priority",
) -> QuerySet[HumanTask]:
    """The inbox's tabs: `mine` (assigned to me), `groups` (unclaimed, for my groups or me as
    a candidate user), `completed` (completed by me); filtered, searched and sorted."""
    tasks = HumanTask.objects.prefetch_related(_task_instances(with_variables=True)).defer(
        "form", "submitted_data"
    )
    if not user.is_authenticated:
        return tasks.none()
    username = user.get_username()
    if tab == "completed":
        tasks = tasks.filter(status=HumanTask.Status.COMPLETED, completed_by=user.pk)
    elif tab == "groups":
        groups = sorted(group_names(user))
        candidate = Q(candidate_users__contains=[username])
        if groups:
            candidate |= Q(candidate_groups__overlap=groups)
        tasks = tasks.filter(candidate, assignee__isnull=True, status=HumanTask.Status.OPEN)
    else:
        tasks = tasks.filter(assignee=username, status__in=HumanTask.ACTIVE_STATUSES)
    if process:
        tasks = tasks.filter(instance__definition__key=process)
    if search:
        matches = Q(instance__business_key__icontains=search) | Q(name__icontains=search)
        tasks = tasks.filter(matches)
    return tasks.order_by(*INBOX_SORTS.get(sort, INBOX_SORTS["priority"]))


def open_task_count(user: Person) -> int:
    """How many tasks wait for `user` (assigned, or unclaimed for them)."""
    if not user.is_authenticated:
        return 0
    return HumanTask.objects.filter(
        _actionable_for(user), status__in=HumanTask.ACTIVE_STATUSES
    ).count()


def next_task_in_instance(user: Person, instance_id: uuid.UUID) -> HumanTask | None:
    """The next open task of the same instance that `user` can act on, if any."""
    return (
        HumanTask.objects.filter(_actionable_for(user), instance_id=instance_id,
                                 status__in=HumanTask.ACTIVE_STATUSES)
        .order_by("-priority", "created_at")
        .first()
    )


def inbox_processes(user: Person) -> list[tuple[str, str]]:
    """(key, name) of the processes of the tasks `user` can act on, for the inbox filter."""
    if not user.is_authenticated:
        return []
    actionable = HumanTask.objects.filter(
        _actionable_for(user), status__in=HumanTask.ACTIVE_STATUSES,
        instance__definition=OuterRef("pk"),
    )
    rows = (
        ProcessDefinition.objects.filter(Exists(actionable))
        .values_list("key", "name")
        .distinct()
        .order_by("key")
    )
    return [(key, name or key) for key, name in rows]


# -- for operators (the admin's instance page and incidents page) ----------------------------

def instance_diagram(instance: ProcessInstance) -> dict[str, Any]:
    """The instance's diagram XML with its markers: per element how often it completed,
    where tokens wait, and where it failed (failed tasks and dead jobs)."""
    definition = ProcessDefinition.objects.only("bpmn_xml").get(pk=instance.definition_id)
    markers = element_markers(load_workflow(instance))
    dead = instance.jobs.filter(status=ServiceJob.Status.DEAD).values_list("element_id", flat=True)
    markers["failed"] = sorted(set(markers["failed"]) | set(dead))
    markers["active"] = [e for e in markers["active"] if e not in markers["failed"]]
    return {"xml": definition.bpmn_xml, **markers}


def repair_choices(instance: ProcessInstance) -> dict[str, Any]:
    """What an operator can pick for the instance's repairs: the elements to reset to, the
    active tasks to skip, and the other versions of its process."""
    workflow = load_workflow(instance)
    versions = list(
        ProcessDefinition.objects.filter(key=instance.definition.key)
        .exclude(pk=instance.definition_id).order_by("-version").values_list("version", flat=True)
    )
    return {"reset_targets": reset_targets(workflow), "skippable": skippable_tasks(workflow),
            "versions": versions}


@dataclass
class IncidentGroup:
    """Instances in incident that failed the same way (same process, element and error)."""

    definition: str
    element_id: str
    kind: str
    error: str
    instances: list[dict[str, Any]] = field(default_factory=list)


def incident_groups(limit: int = 2000) -> list[IncidentGroup]:
    """Instances in incident grouped by what failed, the largest group first."""
    groups: dict[tuple[str, str, str, str], IncidentGroup] = {}
    rows = (
        ProcessInstance.objects.filter(status=ProcessInstance.Status.INCIDENT)
        .order_by("-updated_at")
        .values("id", "business_key", "incident", "updated_at", "definition__key",
                "definition__version")[:limit]
    )
    for row in rows:
        incident = row["incident"] or {}
        error = str(incident.get("error") or "").strip().splitlines()[:1]
        summary = (error[0] if error else "(no error recorded)")[:300]
        key = (row["definition__key"], str(incident.get("element_id") or ""),
               str(incident.get("kind") or ""), summary)
        group = groups.setdefault(key, IncidentGroup(*key))
        group.instances.append(dict(row))
    return sorted(groups.values(), key=lambda g: -len(g.instances))


def status_counts() -> dict[str, int]:
    counts = dict(
        ProcessInstance.objects.values_list("status").annotate(n=Count("id")).order_by()
    )
    return {status: counts.get(status, 0) for status in ProcessInstance.Status.values}


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
