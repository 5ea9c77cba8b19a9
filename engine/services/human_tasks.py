"""Claiming, unclaiming and completing human tasks."""

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from engine.actors import Person, as_user
from engine.bpmn.failures import attempt, run_engine_steps
from engine.bpmn.walks import ready_task, submit_data
from engine.exceptions import Conflict, NotFound
from engine.forms import clean_submission
from engine.jsonable import check_json_depth
from engine.models import HumanTask, ProcessInstance
from engine.observability import context
from engine.permissions import (
    can_claim_task,
    can_complete_task,
    can_see_task,
    can_unclaim_task,
    note_task_access,
)
from engine.rows import Columns, column, ordering, save_row, table

from . import observed
from .audit import events_in_one_insert, record_event
from .instance_store import lock_instance_of_task, open_run, persist_workflow
from .operation_keys import KeyedOperation, reserve_once
from .running import running_as


@dataclass
class LockedTask:
    instance: ProcessInstance
    task: HumanTask
    # The instance's other active task rows (read with the task when asked for).
    others: list[HumanTask]


@cache
def _task_read() -> tuple[Columns, str]:
    """A task of an instance, or the task and the instance's other active tasks, in the
    tasks' own order: every completion asks it, so it is written once (engine.rows)."""
    task = Columns(HumanTask, "t")
    # Only names from the models' metadata are put together here; the values are parameters.
    return task, (
        f"SELECT {task.sql} FROM {table(HumanTask)} AS t "  # noqa: S608
        f"WHERE {column(HumanTask, 'instance', 't')} = %s "
        f"AND ({column(HumanTask, 'pk', 't')} = %s "
        f"OR {column(HumanTask, 'status', 't')} = ANY(%s)) ORDER BY {ordering(HumanTask, 't')}"
    )


def _lock_task(task_id: uuid.UUID | str, user: Person, *, with_others: bool) -> LockedTask:
    """Lock the task's instance, then read the task (every change of a task row happens
    under its instance's lock), with what `user` may do with it and, `with_others`, the
    instance's other active tasks: one locking read and one read."""
    instance = lock_instance_of_task(task_id)  # a task id that is no UUID is not found here
    columns, sql = _task_read()
    others = list(HumanTask.ACTIVE_STATUSES) if with_others else []
    rows = columns.read(sql, [instance.pk, uuid.UUID(str(task_id)), others])
    note_task_access(rows, user)
    task = next((row for row in rows if str(row.pk) == str(task_id)), None)
    if task is None:  # gone with its instance's retention between the two reads
        raise NotFound(f"There is no task {task_id}.")
    return LockedTask(instance, task, [row for row in rows if row is not task])


def _lock_workable_task(
    task_id: uuid.UUID | str, user: Person, *, with_others: bool = False
) -> LockedTask:
    """Lock the task and its instance, and check that `user` may see it and it is still open."""
    locked = _lock_task(task_id, user, with_others=with_others)
    instance, task = locked.instance, locked.task
    if not can_see_task(user, task):
        raise PermissionDenied("You are neither the assignee nor a candidate for this task.")
    if not task.is_active:
        by = f" by {task.completed_by}" if task.completed_by_id else ""
        raise Conflict(f"The task is {task.status}{by}; it cannot be worked on any more.")
    if not instance.tasks_workable:
        raise Conflict(f"The instance is {instance.status}; its tasks cannot be worked on now.")
    return locked


def claim_task(*, task_id: uuid.UUID | str, user: Person) -> HumanTask:
    """Make `user` the assignee of an open task they are a candidate for.

    Claiming a task one already holds changes nothing.
    """
    with transaction.atomic(durable=True):
        locked = _lock_workable_task(task_id, user)
        instance, task = locked.instance, locked.task
        username = user.get_username()
        if task.assignee == username:
            return task
        if task.assignee:
            raise Conflict(f"The task is already claimed by {task.assignee}.")
        if not can_claim_task(user, task):
            raise PermissionDenied("Only a candidate user or group member can claim this task.")
        task.assignee = username
        task.status = HumanTask.Status.CLAIMED
        task.save(update_fields=["assignee", "status"])
        record_event(
            instance,
            "task_claimed",
            actor=user,
            element_id=task.element_id,
            payload={"task": str(task.id)},
        )
        return task


def unclaim_task(*, task_id: uuid.UUID | str, user: Person) -> HumanTask:
    """Give a claimed task back to its candidates. Only the assignee (or a superuser) may."""
    with transaction.atomic(durable=True):
        locked = _lock_workable_task(task_id, user)
        instance, task = locked.instance, locked.task
        if not task.assignee:
            return task
        if not can_unclaim_task(user, task):
            raise PermissionDenied(f"The task is claimed by {task.assignee}, not by you.")
        task.assignee = None
        task.status = HumanTask.Status.OPEN
        task.save(update_fields=["assignee", "status"])
        record_event(
            instance,
            "task_unclaimed",
            actor=user,
            element_id=task.element_id,
            payload={"task": str(task.id)},
        )
        return task


def complete_human_task(
    *,
    task_id: uuid.UUID | str,
    user: Person,
    variables: dict[str, Any] | None = None,
    operation_key: KeyedOperation | None = None,
) -> HumanTask:
    """Submit a task's form and run the instance on to its next wait state.

    Raises `NotFound`, `PermissionDenied`, `Conflict` (task no longer open: nothing changes)
    or `InvalidInput` (form errors). A script that fails after the submission (the task's
    post-script or a later task) keeps the completion and puts the instance in `incident` at
    the failed task; only a failure that belongs to no task raises `ScriptFailed`, rolled back.
    With `operation_key`, a second completion with that key raises `OperationDoneBefore`.
    """
    check_json_depth(variables, "variables")
    with transaction.atomic(durable=True), events_in_one_insert():
        reserve_once(operation_key)
        locked = _lock_workable_task(task_id, user, with_others=True)
        instance, task = locked.instance, locked.task
        context.bind(element=task.element_id)
        if not can_complete_task(user, task):
            raise PermissionDenied(f"The task is claimed by {task.assignee}, not by you.")
        # Choices a form fills from the task's data bind every way in, as on the page.
        submitted = clean_submission(task.form, variables or {}, task_data=instance.variables)
        run = open_run(instance)
        spiff_task = ready_task(run.workflow, task.spiff_task_id)
        if spiff_task is None:
            raise Conflict("The task is no longer waiting for input.")
        submit_data(spiff_task, submitted)
        with running_as(user, instance, completing=task.element_id):
            attempt(run, spiff_task.run)
            run_engine_steps(run)
        task.status = HumanTask.Status.COMPLETED
        task.assignee = task.assignee or user.get_username()
        task.completed_by = as_user(user)
        task.completed_at = timezone.now()
        task.submitted_data = submitted
        save_row(task)
        observed.element_done(instance, task.element_id, "userTask", task.created_at)
        record_event(
            instance,
            "task_completed",
            actor=user,
            element_id=task.element_id,
            payload={"task": str(task.id), "variables": submitted},
        )
        persist_workflow(instance, run, actor=user, active_tasks=locked.others)
        return task
