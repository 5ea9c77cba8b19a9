"""The history of element runs (engine.models.ElementRun) and its hourly roll-ups, written
with the instance's state in the operation's transaction.

`record_element_runs` is called by `persist_workflow` once per operation: the runs the
operation started and ended (engine.bpmn.element_runs) go to the database in one statement
(the database function `baton_write_element_runs`, planned once per connection), which
inserts the new runs, closes the open ones and adds both to the roll-ups
(engine.models.ElementRollup, by definition, element and hour): the insights page and the
statistics API read roll-ups, never the runs themselves.

`BATON_HISTORY_LEVEL`: `none` writes nothing, `activity` (the default) the runs and roll-ups,
`full` also, on each run that ends, the variables the operation changed. Runs are deleted
with their instance (engine.services.retention); roll-ups stay.
"""

import datetime
import json
import uuid
from typing import Any

from django.conf import settings
from django.db import connection

from engine.actors import Actor, as_user
from engine.bpmn.element_runs import RunChange, process_id, run_changes
from engine.bpmn.run import Run
from engine.models import ElementRun, ProcessInstance

LEVELS = ("none", "activity", "full")
# Upper bounds (exclusive) of the duration buckets, in milliseconds: bucket 0 is under 1 ms,
# the last one 30 days and more.
DURATION_BUCKETS_MS = (
    1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000,
    3_600_000, 14_400_000, 86_400_000, 259_200_000, 604_800_000, 2_592_000_000,
)  # fmt: skip
BUCKET_COUNT = len(DURATION_BUCKETS_MS) + 1
# Concurrent operations on instances of one process add to different roll-up rows.
SHARDS = 4
PROCESS_TYPE = ElementRun.PROCESS_TYPE


def history_level() -> str:
    level = str(getattr(settings, "BATON_HISTORY_LEVEL", "activity")).lower()
    return level if level in LEVELS else "activity"


def _process_change(
    instance: ProcessInstance, run: Run, *, fresh: bool, was_finished: bool
) -> RunChange | None:
    """The instance's own run (element type "Process"): it starts with the instance and ends
    when it completes or is terminated."""
    now = datetime.datetime.fromtimestamp(run.opened_at, datetime.UTC)
    element_id = process_id(run.workflow)
    finished = instance.is_finished and not was_finished
    if not fresh and not finished:
        return None
    outcome = ""
    ended = None
    if finished:
        ended = instance.completed_at or datetime.datetime.now(datetime.UTC)
        completed = instance.status == ProcessInstance.Status.COMPLETED
        outcome = "completed" if completed else "cancelled"
    return RunChange(instance.id, element_id, PROCESS_TYPE, now if fresh else None, ended, outcome)


def _changed_variables(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    changed = {name: value for name, value in after.items() if before.get(name) != value}
    changed.update({name: None for name in before if name not in after})
    return changed


def record_element_runs(
    instance: ProcessInstance,
    run: Run,
    *,
    actor: Actor,
    fresh: bool,
    was_finished: bool,
    variables_before: dict[str, Any],
) -> None:
    """Write the element runs this operation started and ended (one statement)."""
    level = history_level()
    if level == "none":
        return
    changes = run_changes({} if fresh else run.task_states, run.workflow, run.opened_at)
    process = _process_change(instance, run, fresh=fresh, was_finished=was_finished)
    if process is not None:
        changes.append(process)
    if not changes:
        return
    variables = None
    if level == "full":
        variables = json.dumps(_changed_variables(variables_before, instance.variables))
    user = as_user(actor)
    write_runs(
        instance,
        changes,
        actor=user.get_username() if user is not None else "",
        variables=variables,
    )


def end_open_run(instance: ProcessInstance, spiff_task_id: uuid.UUID, outcome: str) -> None:
    """End the open run of a task outside a workflow write (a service job that failed for
    good: "incident"); `reopen_run` starts its next run when it is retried."""
    if history_level() == "none":
        return
    now = datetime.datetime.now(datetime.UTC)
    write_runs(instance, [RunChange(spiff_task_id, "", "", None, now, outcome)], actor="")


def reopen_run(instance: ProcessInstance, spiff_task_id: uuid.UUID, *, actor: Actor) -> None:
    """Start a new run of a task whose last run ended in an incident (a dead job retried)."""
    if history_level() == "none":
        return
    last = (
        ElementRun.objects.filter(instance=instance, spiff_task_id=spiff_task_id)
        .order_by("-id")
        .values_list("element_id", "element_type", "ended_at")
        .first()
    )
    if last is None or last[2] is None:
        return  # no history of it, or its run is still open
    now = datetime.datetime.now(datetime.UTC)
    user = as_user(actor)
    name = user.get_username() if user is not None else ""
    write_runs(instance, [RunChange(spiff_task_id, last[0], last[1], now, None, "")], actor=name)


def write_runs(
    instance: ProcessInstance,
    changes: list[RunChange],
    *,
    actor: str,
    variables: str | None = None,
) -> None:
    """Insert and close runs of `instance` and add them to the roll-ups, in one statement.
    A change without a start closes the task's open run (nothing if there is none)."""
    # baton_write_element_runs (migration engine 0018) is one statement kept planned per
    # connection: the inserts, the closes and the roll-up upserts.
    params: list[Any] = [
        instance.pk,
        instance.definition_id,
        [change.task_id for change in changes],
        [change.element_id for change in changes],
        [change.element_type[:64] for change in changes],
        [change.started_at for change in changes],
        [change.ended_at for change in changes],
        [change.outcome for change in changes],
        actor[:150],
        variables,
        instance.pk.int % SHARDS,
        list(DURATION_BUCKETS_MS),
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT baton_write_element_runs(%s, %s, %s::uuid[], %s::text[], %s::text[],"
            " %s::timestamptz[], %s::timestamptz[], %s::text[], %s, %s::jsonb, %s, %s::bigint[])",
            params,
        )
