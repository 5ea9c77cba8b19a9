"""Keeping the `HumanTask` rows in step with the READY user and manual tasks of a workflow."""

import datetime
from typing import Any

from django.db.models import Max
from django.utils import timezone

from engine.actors import Actor
from engine.bpmn.expressions import is_expression
from engine.bpmn.literals import due_moment
from engine.bpmn.scripting import describe_error
from engine.bpmn.types import Workflow
from engine.bpmn.types import WorkflowTask as Task
from engine.bpmn.walks import became_ready_at, evaluate_over_data, ready_human_tasks
from engine.exceptions import TaskScriptFailed
from engine.models import HumanTask, ProcessInstance
from engine.rows import insert_rows

from .audit import record_event
from .definition_cache import definition_elements, definition_key


def _evaluate(task: Task, value: Any) -> Any:
    """`${...}` (JUEL) and `= ...` (FEEL) values are expressions over the task's data
    (engine.bpmn.expressions); others are literal.

    A failing expression raises `TaskScriptFailed`: the task fails and its instance goes to
    incident (see instance_store.persist_workflow)."""
    if not is_expression(value):
        return value
    try:
        return evaluate_over_data(task, value)
    except Exception as exc:  # noqa: BLE001 -- whatever it raises is an incident
        message = f"{task.task_spec.bpmn_id}: cannot evaluate {value!r}: {describe_error(exc)}"
        raise TaskScriptFailed(
            message,
            task=task,
            errors=[{"element_id": task.task_spec.bpmn_id, "message": message}],
        ) from None


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [str(item) for item in value]


def _resolve_list(task: Task, values: list[str]) -> list[str]:
    resolved: list[str] = []
    for value in values:
        resolved.extend(_as_list(_evaluate(task, value)))
    return resolved


def _due_at(task: Task, value: Any) -> datetime.datetime | None:
    value = _evaluate(task, value)
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    text = str(value)
    try:
        due = due_moment(text, timezone.now())
    except ValueError:
        raise TaskScriptFailed(
            f"{task.task_spec.bpmn_id}: due date {text!r} is not ISO 8601.", task=task
        ) from None
    return due if timezone.is_aware(due) else timezone.make_aware(due)


def _lane_owners(task: Task, lane: str) -> list[str]:
    """SpiffArena's convention: a script may set `lane_owners = {lane name: [usernames]}`."""
    owners = task.data.get("lane_owners")
    if lane and isinstance(owners, dict):
        return _as_list(owners.get(lane))
    return []


def _process_key(instance: ProcessInstance) -> str:
    """The instance's process key: from its definition when that was read with it."""
    if ProcessInstance.definition.is_cached(instance):
        return instance.definition.key
    return definition_key(instance.definition_id)


def _new_human_task(instance: ProcessInstance, task: Task, info: dict[str, Any]) -> HumanTask:
    priority = _evaluate(task, info.get("priority"))
    assignee = _evaluate(task, info.get("assignee"))
    lane = info.get("lane") or ""
    candidate_users = _resolve_list(task, info.get("candidate_users", [])) or _lane_owners(
        task, lane
    )
    candidate_groups = _resolve_list(task, info.get("candidate_groups", []))
    if candidate_users and lane in candidate_groups and not info.get("candidate_users"):
        candidate_groups.remove(lane)  # named lane owners replace the lane-as-group default
    if not (assignee or candidate_users or candidate_groups) and instance.started_by_id:
        # Nobody named: like SpiffArena, the task belongs to whoever started the instance.
        assignee = instance.started_by.get_username() if instance.started_by else None
    return HumanTask(
        instance=instance,
        spiff_task_id=task.id,
        process_key=_process_key(instance),
        element_id=task.task_spec.bpmn_id,
        name=info.get("name") or task.task_spec.bpmn_name or task.task_spec.bpmn_id,
        lane=lane,
        assignee=str(assignee) if assignee else None,
        candidate_users=candidate_users,
        candidate_groups=candidate_groups,
        form=info.get("form") or {},
        due_at=_due_at(task, info.get("due_date")),
        priority=int(priority) if priority not in (None, "") else 50,
        status=HumanTask.Status.CLAIMED if assignee else HumanTask.Status.OPEN,
    )


def _handled_since_ready(task: Task, row_created_at: datetime.datetime | None) -> bool:
    """Whether a (closed) row already stood for this readiness of the task. A row from before
    the task last became READY (an earlier run, undone by a reset) does not."""
    if row_created_at is None:
        return False
    return row_created_at >= became_ready_at(task)


def sync_human_tasks(
    instance: ProcessInstance,
    workflow: Workflow,
    *,
    actor: Actor,
    fresh: bool = False,
    active: list[HumanTask] | None = None,
    opened_at: float | None = None,
) -> list[HumanTask]:
    """Open a row for each newly READY manual task; cancel rows whose task is gone. Returns
    the rows opened.

    `fresh`: the instance was created in this transaction, so it has no rows to compare with.
    `active`: its active rows, when the caller read them under the instance's lock in this
    transaction (others are read here). `opened_at`: when the operation began (`Run`); a
    task that became READY since then cannot have a row for this readiness yet.
    """
    ready = ready_human_tasks(workflow)
    elements = definition_elements(instance.definition_id)
    if not elements and not ready:
        return []  # a process without user or manual tasks has no rows to keep in step
    if fresh:
        rows: list[HumanTask] = []
    elif active is not None:
        rows = [row for row in active if row.is_active]
    else:
        rows = list(instance.human_tasks.filter(status__in=HumanTask.ACTIVE_STATUSES))
    by_task = {row.spiff_task_id: row for row in rows}
    gone = [row for spiff_id, row in by_task.items() if spiff_id not in ready]
    if gone:
        HumanTask.objects.filter(pk__in=[row.pk for row in gone]).update(
            status=HumanTask.Status.CANCELLED
        )
    for row in gone:
        row.status = HumanTask.Status.CANCELLED
        record_event(instance, "task_cancelled", actor=actor, element_id=row.element_id)
    new_ids = [spiff_id for spiff_id in ready if spiff_id not in by_task]
    earlier = [
        spiff_id
        for spiff_id in new_ids
        if not fresh and (opened_at is None or ready[spiff_id].last_state_change < opened_at)
    ]
    handled = (
        dict(  # the newest row per task: a reset leaves older ones
            instance.human_tasks.filter(spiff_task_id__in=earlier)
            .values("spiff_task_id")
            .annotate(newest=Max("created_at"))
            .values_list("spiff_task_id", "newest")
        )
        if earlier
        else {}
    )
    opened = [
        _new_human_task(
            instance, ready[spiff_id], elements.get(ready[spiff_id].task_spec.bpmn_id, {})
        )
        for spiff_id in new_ids
        if not _handled_since_ready(ready[spiff_id], handled.get(spiff_id))
    ]
    insert_rows(opened)
    for row in opened:
        record_event(
            instance,
            "task_created",
            actor=actor,
            element_id=row.element_id,
            payload={"task": str(row.id), "name": row.name},
        )
    return opened
