"""The history of element runs (engine.models.ElementRun) and its hourly roll-ups, written
with the instance's state in the operation's transaction.

`record_element_runs` is called by `persist_workflow` once per operation: the runs the
operation started and ended (engine.bpmn.element_runs) go to the database in one statement,
which inserts the new runs, closes the open ones and adds both to the roll-ups
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
PROCESS_TYPE = "Process"


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


_WRITE = """
WITH data AS (
    SELECT * FROM unnest(%(task_ids)s::uuid[], %(element_ids)s::text[], %(types)s::text[],
                         %(starts)s::timestamptz[], %(ends)s::timestamptz[], %(outcomes)s::text[])
        AS d(task_id, element_id, element_type, started_at, ended_at, outcome)
),
closed AS (
    UPDATE engine_elementrun r
       SET ended_at = d.ended_at, outcome = d.outcome, actor = %(actor)s, changes = %(changes)s,
           duration_ms = GREATEST(0, (EXTRACT(EPOCH FROM d.ended_at - r.started_at) * 1000))::bigint
      FROM data d
     WHERE d.started_at IS NULL AND r.instance_id = %(instance)s
       AND r.spiff_task_id = d.task_id AND r.ended_at IS NULL
    RETURNING r.element_id, r.element_type, NULL::timestamptz AS started_at, r.ended_at,
              r.outcome, r.duration_ms
),
opened AS (
    INSERT INTO engine_elementrun (instance_id, definition_id, spiff_task_id, element_id,
                                   element_type, started_at, ended_at, duration_ms, outcome,
                                   actor, changes)
    SELECT %(instance)s, %(definition)s, d.task_id, d.element_id, d.element_type, d.started_at,
           d.ended_at,
           CASE WHEN d.ended_at IS NOT NULL THEN GREATEST(0,
                (EXTRACT(EPOCH FROM d.ended_at - d.started_at) * 1000))::bigint END,
           d.outcome, %(actor)s, CASE WHEN d.ended_at IS NOT NULL THEN %(changes)s::jsonb END
      FROM data d WHERE d.started_at IS NOT NULL
    RETURNING element_id, element_type, started_at, ended_at, outcome, duration_ms
),
runs AS (SELECT * FROM closed UNION ALL SELECT * FROM opened),
counts AS (
    SELECT element_id, element_type, date_trunc('hour', started_at) AS hour, 1 AS started,
           0 AS completed, 0 AS cancelled, 0 AS errors, 0 AS incidents, 0 AS ended,
           0::bigint AS duration_ms, NULL::int AS bucket
      FROM runs WHERE started_at IS NOT NULL
    UNION ALL
    SELECT element_id, element_type, date_trunc('hour', ended_at), 0,
           (outcome = 'completed')::int, (outcome = 'cancelled')::int, (outcome = 'error')::int,
           (outcome = 'incident')::int, 1, duration_ms,
           width_bucket(duration_ms, %(bounds)s::bigint[])
      FROM runs WHERE ended_at IS NOT NULL
),
grouped AS (
    SELECT element_id, max(element_type) AS element_type, hour, sum(started) AS started,
           sum(completed) AS completed, sum(cancelled) AS cancelled, sum(errors) AS errors,
           sum(incidents) AS incidents, sum(ended) AS ended, sum(duration_ms) AS duration_ms,
           ARRAY(SELECT count(*) FILTER (WHERE b = i)::int
                   FROM unnest(array_agg(bucket)) AS b CROSS JOIN generate_series(0, %(last)s) i
                  GROUP BY i ORDER BY i) AS buckets
      FROM counts GROUP BY element_id, hour
)
INSERT INTO engine_elementrollup AS r (definition_id, element_id, element_type, hour, shard,
                                       started, completed, cancelled, errors, incidents, ended,
                                       duration_ms_sum, buckets)
SELECT %(definition)s, element_id, element_type, hour, %(shard)s, started, completed,
       cancelled, errors, incidents, ended, COALESCE(duration_ms, 0), buckets
  FROM grouped ORDER BY element_id, hour
ON CONFLICT (definition_id, element_id, hour, shard) DO UPDATE SET
    started = r.started + EXCLUDED.started,
    completed = r.completed + EXCLUDED.completed,
    cancelled = r.cancelled + EXCLUDED.cancelled,
    errors = r.errors + EXCLUDED.errors,
    incidents = r.incidents + EXCLUDED.incidents,
    ended = r.ended + EXCLUDED.ended,
    duration_ms_sum = r.duration_ms_sum + EXCLUDED.duration_ms_sum,
    buckets = ARRAY(SELECT COALESCE(a, 0) + COALESCE(b, 0)
                      FROM unnest(r.buckets, EXCLUDED.buckets) AS t(a, b))
"""


def write_runs(
    instance: ProcessInstance,
    changes: list[RunChange],
    *,
    actor: str,
    variables: str | None = None,
) -> None:
    """Insert and close runs of `instance` and add them to the roll-ups, in one statement.
    A change without a start closes the task's open run (nothing if there is none)."""
    params: dict[str, Any] = {
        "task_ids": [change.task_id for change in changes],
        "element_ids": [change.element_id for change in changes],
        "types": [change.element_type[:64] for change in changes],
        "starts": [change.started_at for change in changes],
        "ends": [change.ended_at for change in changes],
        "outcomes": [change.outcome for change in changes],
        "instance": instance.pk,
        "definition": instance.definition_id,
        "actor": actor[:150],
        "changes": variables,
        "bounds": list(DURATION_BUCKETS_MS),
        "last": BUCKET_COUNT - 1,
        "shard": instance.pk.int % SHARDS,
    }
    with connection.cursor() as cursor:
        cursor.execute(_WRITE, params)
